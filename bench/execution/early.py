"""A sweep's zygote and first worker, started before the sweep imports torch, pandas and the variants.

The zygote (bench/execution/zygote.py) and the sweep each spend seconds importing torch
(docs/reliability.md). Started from the command line's flags before the sweep imports anything
heavy, the zygote imports while the sweep does, instead of after it, and forks the first worker.
The sweep's pool adopts both only if it would have started exactly this worker (same command,
environment and sys.path); otherwise they are stopped and the pool starts its own, so a guess
from the flags can cost time but never change a row.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import tempfile
from pathlib import Path

import psutil

from bench.execution import allocator as allocators
from bench.execution.isolation import Isolation, Worker

COMMANDS_WITHOUT_SWEEP = ("list", "plot", "report", "merge", "gate", "fidelity", "models")
_early: dict[str, object] = {}  # "worker": the Worker, "launched": what it was started as, "folder": its log folder


def default_threads() -> int:
    """Return the sweep's default thread count: the physical cores this process may run on (torch's own default)."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(allowed, psutil.cpu_count(logical=False) or allowed))


def _sweep_flags(argv: list[str]) -> argparse.Namespace | None:
    """Return the flags that decide how a local sweep starts its workers, or None when argv runs no such sweep."""
    if argv and argv[0] in COMMANDS_WITHOUT_SWEEP or {"-h", "--help"} & set(argv):
        return None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--plugin", action="append", default=[])
    parser.add_argument("--threads", default=str(default_threads()))
    parser.add_argument("--allocator", default=allocators.DEFAULT)
    parser.add_argument("--cases-per-worker", default="1")
    parser.add_argument("--executor", default="local")
    try:
        flags = parser.parse_known_args(argv[1:] if argv and argv[0] == "sweep" else argv)[0]
    except SystemExit:  # a flag without its value: the real parser says so
        return None
    good = (flags.threads.isascii() and flags.threads.isdigit() and int(flags.threads) > 0 and flags.cases_per_worker != "0"
            and flags.executor == "local" and flags.allocator in allocators.ALLOCATORS)
    return flags if good and not allocators.unavailable(flags.allocator) else None


def _launched(isolation: Isolation) -> tuple[object, ...]:
    """Return what a worker of isolation is started as (its plugins, first paths and environment) and the paths it imports from."""
    return (isolation.plugins, isolation.import_first, isolation.worker_environment()), tuple(sys.path)


def _same_start(launched: tuple[object, ...], now: tuple[object, ...]) -> bool:
    # Paths appended to sys.path since (torch's import appends setuptools' vendored packages; a plugin may add its
    # folder) are appended in the worker too, by the same imports; any other change of the paths is a different start.
    (started, paths), (wanted, current) = launched, now
    return started == wanted and current[: len(paths)] == paths


def launch(argv: list[str]) -> None:
    """Start the first worker of the sweep that argv asks for, if it runs workers; never raises (the sweep reports)."""
    try:
        flags = _sweep_flags(argv)
        if flags is None:
            return
        isolation = Isolation(plugins=tuple(flags.plugin), allocator=flags.allocator, threads=int(flags.threads))
        folder = tempfile.TemporaryDirectory(prefix="bench-early-")
        zygote = isolation.zygote(Path(folder.name))
        _early.update(worker=Worker(isolation, Path(folder.name), zygote), launched=_launched(isolation), folder=folder)
        atexit.register(discard)
    except Exception:  # a guess that fails costs nothing: the pool starts its own worker
        discard()


def adopt(isolation: Isolation) -> Worker | None:
    """Return the early worker if it was started as a worker of isolation would be (now under isolation's limits), else
    stop it and return None."""
    worker = _early.pop("worker", None)
    if worker is None:
        return None
    if not _same_start(_early.pop("launched"), _launched(isolation)) or not isolation.forked:
        _stop(worker)
        return None
    worker.isolation, worker.cap = isolation, isolation.max_memory_bytes
    return worker


def discard() -> None:
    """Stop the early worker if no pool adopted it."""
    worker = _early.pop("worker", None)
    if worker is not None:
        _stop(worker)
    _early.pop("launched", None)


def _stop(worker: Worker) -> None:
    worker.close()
    worker.zygote.close()
