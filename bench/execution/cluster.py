"""A sweep's shards as jobs through submitit: on Slurm (`submitit`), or as local processes (`submitit-local`).

Each job runs the normal sweep (worker isolation, resume, validation, allocator, rounds) on its
shard's cases and writes FOLDER/shard-<i>-<host>.csv. A job holds the machine's benchmark lock
while it measures, so two shards that land on one machine (submitit-local, a shared node) take
turns instead of timing each other. Submitit requeues a job that times out or is preempted
(its checkpoint resubmits the same shard, which resumes from its CSV); the submitting process
resubmits a job that failed, a bounded number of times.
"""

from __future__ import annotations

import argparse
import copy
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import submitit

from attention_variants.case import Case
from bench.execution.shards import host_name, shard_files, shard_path
from bench.execution.sweep import pending, recorded_keys
from bench.messages import first_line
from bench.results import ResultsError
from bench.results.store import load  # the rows only: their keys, not their block times

LOCK_ENV = "BENCH_MACHINE_LOCK"  # the file a job locks while it measures; the README's benchmarks use /tmp/bench.lock
LOST_AFTER_S = 30.0  # a Slurm job neither in the queue nor with a result for this long was cancelled or lost its node


class ClusterError(ValueError):
    """A cluster run that cannot start (no Slurm here, a bad option); the message is one line."""


@dataclass(frozen=True)
class ClusterOptions:
    executor: str
    shards: int = 1
    partition: str | None = None
    constraint: str | None = None
    gpus: int | None = None
    time_min: int = 60
    max_retries: int = 2


def machine_lock_path() -> Path:
    return Path(os.environ.get(LOCK_ENV) or Path(tempfile.gettempdir()) / "bench.lock")


class ShardJob(submitit.helpers.Checkpointable):
    """One shard of a sweep, run as a job: `run(args)` is the sweep command with this shard's options."""

    def __init__(self, args: argparse.Namespace, index: int, count: int, folder: Path, workdir: Path) -> None:
        self.args, self.index, self.count, self.folder, self.workdir = args, index, count, folder, workdir

    def __call__(self) -> dict[str, object]:
        os.chdir(self.workdir)  # the repository: plugins and relative paths resolve as on the submitting side
        host = host_name()
        out = shard_path(self.folder, self.index, host)
        args = copy.copy(self.args)
        args.executor, args.shard, args.no_plots = "local", f"{self.index}/{self.count}", True
        args.run_id = self.folder.name
        resume = out.is_file() and out.stat().st_size > 0  # a requeued or resubmitted job finishes what it began
        args.resume, args.out = (out, None) if resume else (None, out)
        with _machine_lock(machine_lock_path()):
            status = args.run(args)
        if status != 0:
            raise RuntimeError(f"the sweep of shard {self.index} on {host} ended with exit status {status}")
        return {"host": host, "csv": str(out)}


class _machine_lock:
    """Hold an exclusive lock on the machine's benchmark lock file (waits for whoever holds it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.handle = open(self.path, "a")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {self.path}: another benchmark is measuring on this machine", flush=True)
            fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def make_executor(options: ClusterOptions, logs: Path) -> submitit.Executor:
    """Return the submitit executor of the options, its job logs in `logs` (ClusterError where it cannot run)."""
    if options.executor == "submitit" and shutil.which("sbatch") is None:
        raise ClusterError("--executor submitit needs Slurm's sbatch, which is not on this machine's PATH "
                           "(try --executor submitit-local on this machine)")
    cluster = "slurm" if options.executor == "submitit" else "local"
    # A job that reaches its time limit or is preempted is requeued this many times (it resumes from its CSV).
    executor = submitit.AutoExecutor(folder=logs, cluster=cluster, slurm_max_num_timeout=options.max_retries,
                                     local_max_num_timeout=options.max_retries)
    parameters: dict[str, Any] = {"name": "local-attention-bench", "timeout_min": options.time_min}
    if cluster == "slurm":
        parameters.update(slurm_exclusive=True,  # a benchmark never shares its node
                          slurm_partition=options.partition,
                          slurm_constraint=options.constraint, slurm_gpus_per_node=options.gpus)
    executor.update_parameters(**{key: value for key, value in parameters.items() if value is not None})
    return executor


@dataclass
class Shard:
    """One shard of a cluster run, as the submitting process follows it."""

    index: int
    plan: list[tuple[int, Case]]
    job: Any = None
    job_ids: list[str] = field(default_factory=list)
    attempts: int = 0
    state: str = "waiting"  # waiting, PENDING, RUNNING, ..., done, failed
    reason: str = ""
    lost_since: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


def rows_done(shard: Shard, folder: Path) -> int:
    """Return how many (round, case) pairs of the shard's plan its CSVs hold (from any host)."""
    keys: list[tuple[str, ...]] = []
    for path in shard_files(folder, shard.index):
        try:
            keys += recorded_keys(load(path))
        except ResultsError:  # being written for the first time, or damaged: the job's own resume decides
            continue
    return len(shard.plan) - len(pending(shard.plan, keys))


def submit(executor: submitit.Executor, shard: Shard, args: argparse.Namespace, count: int, folder: Path) -> None:
    """Submit (or resubmit) the shard's job."""
    shard.job = executor.submit(ShardJob(args, shard.index, count, folder, Path.cwd()))
    shard.job_ids.append(str(shard.job.job_id))
    shard.attempts += 1
    shard.state, shard.lost_since = "submitted", None


def _queue_state(job_id: str) -> str | None:
    """Return the job's state from squeue, or None when Slurm no longer lists it."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "UNKNOWN"
    return out.stdout.strip() or None


def _state(shard: Shard, options: ClusterOptions) -> str:
    """Return the job's state; on a Slurm without accounting (sacct), squeue's."""
    state = str(shard.job.state)
    if options.executor == "submitit" and state == "UNKNOWN":
        return _queue_state(str(shard.job.job_id)) or "GONE"
    return state


def _failure(job: Any) -> str:
    """Return the line that says why a finished job failed ('' when it succeeded): its error's last traceback line."""
    try:
        job.result()
        return ""
    except Exception as err:  # submitit re-raises the job's error with its traceback, between dashed lines, as text
        parts = re.split(r"\n-{10,}\n", str(err))
        lines = [line.strip() for line in (parts[1] if len(parts) > 2 else parts[0]).splitlines() if line.strip()]
        line = lines[-1] if len(parts) > 2 and lines else first_line(err)
        return re.sub(r"^(?:[A-Za-z_][\w]*\.)+(?=\w+:)", "", line)  # bench.cli.common.CliError: ... -> CliError: ...


def poll(shard: Shard, executor: submitit.Executor, args: argparse.Namespace, count: int, folder: Path,
         options: ClusterOptions, note: Callable[[str], None]) -> None:
    """Update the shard from its job; resubmit a failed job while attempts remain."""
    if shard.finished or shard.job is None:
        return
    reason = ""
    if shard.job.done():
        reason = _failure(shard.job)
        if not reason:
            shard.state = "done"
            return
    else:
        shard.state = _state(shard, options)
        if shard.state != "GONE":
            return
        shard.lost_since = shard.lost_since or time.monotonic()
        if time.monotonic() - shard.lost_since < LOST_AFTER_S:  # squeue may briefly miss a job that is finishing
            return
        reason = "the job left Slurm's queue without a result (cancelled, or its node failed)"
    if shard.attempts <= options.max_retries:
        note(f"shard {shard.index}: job {shard.job.job_id} failed ({reason}); resubmitting "
             f"(attempt {shard.attempts + 1} of {options.max_retries + 1})")
        submit(executor, shard, args, count, folder)
    else:
        shard.state, shard.reason = "failed", reason


def cancel(shards: list[Shard]) -> None:
    """Cancel every shard's job that has not finished."""
    for shard in shards:
        if shard.job is not None and not shard.finished:
            try:
                shard.job.cancel(check=False)
            except Exception:  # cancelling is best effort: the summary says how to resume either way
                pass


def quiet_submitit() -> None:
    """Silence submitit's per-poll warnings (e.g. a Slurm without sacct): the progress display reports states."""
    logging.getLogger("submitit").setLevel(logging.ERROR)
