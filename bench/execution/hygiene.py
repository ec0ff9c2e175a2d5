"""What a case may leave behind in its worker, undone before the next case: working directory, environment, processes.

File descriptors are not closed here (torch opens some lazily and keeps them): the parent
retires a worker whose descriptors grew by more than LEAKED_FDS (isolation.py) instead.
"""

from __future__ import annotations

import ctypes
import os
import signal
from dataclasses import dataclass

import psutil

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
LEAKED_FDS = 64  # descriptors a worker may gain over its life before the parent replaces it


def become_subreaper() -> None:
    """Make this process the reaper of its orphaned descendants (Linux): a daemon a case double-forks
    then stays below the worker, where the worker's clean-up and the parent's kill find it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: a double-forked daemon may escape


@dataclass(frozen=True)
class Snapshot:
    """The process state a case may change and the next case must not inherit."""

    cwd: str
    environ: dict[str, str]


def snapshot() -> Snapshot:
    """Return this process's working directory and environment."""
    return Snapshot(os.getcwd(), dict(os.environ))


def restore(before: Snapshot, keep: frozenset[int] = frozenset()) -> None:
    """Return to the snapshot's directory and environment, and kill every descendant not in keep."""
    try:
        os.chdir(before.cwd)
    except OSError:
        pass
    if dict(os.environ) != before.environ:
        os.environ.clear()
        os.environ.update(before.environ)
    kill_descendants(keep)


def kill_descendants(keep: frozenset[int] = frozenset()) -> None:
    """Kill the processes below this one (daemons included, as its subreaper) except keep, and reap them."""
    try:
        strays = [child for child in psutil.Process().children(recursive=True) if child.pid not in keep]
    except psutil.Error:
        return
    for child in strays:
        try:
            child.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    psutil.wait_procs(strays, timeout=5)
