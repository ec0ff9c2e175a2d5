"""Start-up: a sweep's first worker starts before the sweep imports torch, and is used only if it is the worker the sweep
would have started (bench/execution/early.py); the CPU's name and the load sample begin at once (bench/measure/probes.py)."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict

import psutil
import pytest

from attention_variants.case import Case
from bench.execution import early
from bench.execution.isolation import Isolation
from bench.execution.pool import WorkerPool
from bench.measure import probes
from bench.measure.settings import Settings

SMALL = Case(variant="im2col", height=6, width=6, heads=1, head_dim=4, kernel_size=3)


@pytest.fixture(autouse=True)
def no_early_worker_left():
    yield
    early.discard()


def test_the_early_worker_serves_the_sweep_that_would_have_started_it():
    early.launch(["--variants", "im2col", "--threads", "1"])
    worker = early.adopt(Isolation(threads=1, case_timeout_s=60))
    assert worker is not None and worker.isolation.case_timeout_s == 60  # under the sweep's own limits
    with WorkerPool(worker.isolation, worker) as pool:
        row = pool.measure(asdict(SMALL), asdict(Settings(1, 0.0, 0.01, 0.02, 0)))
    assert row.status == "ok", row
    assert early.adopt(Isolation(threads=1)) is None  # adopted once


@pytest.mark.parametrize("argv,isolation", [
    (["--threads", "1"], Isolation(threads=2)),  # another thread count: another environment
    (["--threads", "1"], Isolation(threads=1, allocator="cold")),
    (["--threads", "1"], Isolation(threads=1, import_first=("/elsewhere",))),  # the A/B gate's base side
])
def test_a_worker_started_otherwise_is_stopped_not_used(argv, isolation):
    early.launch(argv)
    started = early._early["worker"]
    assert early.adopt(isolation) is None
    assert started.process.poll() is not None  # stopped


@pytest.mark.parametrize("argv", [
    ["list"], ["report", "x.csv"], ["--cases-per-worker", "0"], ["--executor", "slurm"], ["--help"], ["--threads", "two"],
    ["--threads"], ["--allocator", "nope"],
])
def test_no_early_worker_where_no_local_worker_would_run(argv):
    early.launch(argv)
    assert "worker" not in early._early


def test_probes_name_the_cpu_and_sample_the_load():
    probes.start()
    assert re.fullmatch(r".+ \((family \d+ model \d+, )?\d+ cores / \d+ threads\)", probes.cpu_name())
    if platform.machine() in ("x86_64", "AMD64"):  # where cpuid has them
        assert re.search(r"\(family \d+ model \d+, ", probes.cpu_name())
    assert isinstance(probes.busy_report(sample_s=0.01), str)


def _parent_of(pid: int) -> int:
    return psutil.Process(pid).ppid()


@pytest.mark.slow
def test_workers_are_forked_fresh_from_one_zygote_that_a_pool_replaces_when_it_dies():
    settings = asdict(Settings(1, 0.0, 0.01, 0.02, 0))
    with WorkerPool(Isolation(threads=1, cases_per_worker=1)) as pool:
        pids = []
        for _ in range(2):
            pool.launch()
            assert pool.ready() is None
            pids.append(pool.worker.process.pid)
            assert _parent_of(pids[-1]) == pool.zygote.process.pid  # forked by the zygote, not started by this process
            assert pool.measure(asdict(SMALL), settings).status == "ok"
        assert pids[0] != pids[1] and not psutil.pid_exists(pids[0])  # a fresh process per case, the last one gone
        first_zygote = pool.zygote.process.pid
        pool.zygote.kill()
        assert pool.measure(asdict(SMALL), settings).status == "ok"  # a new zygote, a new worker
        assert pool.zygote.process.pid != first_zygote
    assert pool.zygote.process.poll() is not None  # the pool's end ends its zygote


@pytest.mark.slow
def test_a_zygote_that_cannot_fork_leaves_the_pool_to_start_workers_plainly():
    isolation = Isolation(threads=1, plugins=("tests.plugins.claims_cuda",))
    with WorkerPool(isolation) as pool:
        row = pool.measure(asdict(SMALL), asdict(Settings(1, 0.0, 0.01, 0.02, 0)))
        assert row.status == "ok", row
        assert not pool.isolation.forked and _parent_of(pool.worker.process.pid) == os.getpid()
