"""Start-up: a sweep's first worker starts before the sweep imports torch, and is used only if it is the worker the sweep
would have started (bench/execution/early.py); the CPU's name and the load sample begin at once (bench/measure/probes.py)."""

from __future__ import annotations

import re
from dataclasses import asdict

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
    assert re.fullmatch(r".+ \(\d+ cores / \d+ threads\)", probes.cpu_name())
    assert isinstance(probes.busy_report(sample_s=0.01), str)
