"""Parent side of the zygote: one process that imports torch, the variants and the plugins once and forks each worker.

Starting a worker with Python costs an import of torch (1-3 s here); forking one from a process
that has imported everything and run nothing costs ~15 ms. A pool therefore keeps one zygote and
forks a fresh worker from it at every retirement (after a failure, every `cases_per_worker` cases,
every round): a fresh process costs little, so isolation can be strict. No case ever runs in the
zygote itself, so every forked worker starts from the same untouched state.

The worker's side (the fork loop) is in bench/execution/worker.py. The zygote reports on its
control socket when it forked a worker, when one exits, stops or continues; `ForkedProcess` turns
those reports into the part of `subprocess.Popen` a Worker uses (pid, poll, wait, stdin).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

import psutil

REPORT_BYTES = 256


class Zygote:
    """A live zygote process (its own session) with its control socket and log."""

    def __init__(self, boot_command: list[str], environment: dict[str, str], log_dir: Path) -> None:
        """Start `boot_command` (Isolation.boot_command) as the zygote, with its control socket and lifeline added."""
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        lifeline_read, self.lifeline = os.pipe()  # closes when this process ends, however it ends
        self.log_path = Path(tempfile.mkstemp(dir=log_dir, prefix="zygote-", suffix=".log")[1])
        command = [*boot_command, f"--zygote-fd={theirs.fileno()}", f"--lifeline-fd={lifeline_read}"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            pass_fds=(theirs.fileno(), lifeline_read), start_new_session=True,
                                            env=environment)
        theirs.close()
        os.close(lifeline_read)
        self.requests = 0
        self.forked: dict[int, int] = {}  # request number -> pid
        self.exits: dict[int, int] = {}  # request number -> exit status as Popen gives it (-N: killed by signal N)
        self.eof = False

    def fork(self, results: int, lifeline: int, log: int) -> "ForkedProcess":
        """Ask for a worker with these descriptors as its result pipe, lifeline and log; return its handle.

        Does not wait: a zygote still importing forks once it is ready. The descriptors are
        copied into the zygote; the caller closes its own.
        """
        number, self.requests = self.requests, self.requests + 1
        stdin_read, stdin_write = os.pipe()
        try:
            socket.send_fds(self.control, [b"fork"], [stdin_read, results, lifeline, log])
        except OSError:
            pass  # the zygote is gone: the worker's result pipe reads end-of-file and poll() says why
        os.close(stdin_read)
        return ForkedProcess(self, number, os.fdopen(stdin_write, "wb"))

    def pump(self, timeout_s: float = 0.0) -> None:
        """Read the reports that have come, waiting up to timeout_s for the first."""
        while not self.eof and select.select([self.control], [], [], timeout_s)[0]:
            timeout_s = 0.0
            try:
                report = self.control.recv(REPORT_BYTES).decode()
            except OSError:
                report = ""
            if not report:
                self.eof = True
                break
            kind, number, value = report.split()
            if kind == "forked":
                self.forked[int(number)] = int(value)
            elif kind == "exit":
                self.exits[int(number)] = int(value)
            # "changed": a worker stopped or continued; reading it is all (it wakes a parent that waits on fileno())

    def fileno(self) -> int:
        """The control socket: readable whenever the zygote reports (a worker forked, stopped, continued or ended)."""
        return self.control.fileno()

    def alive(self) -> bool:
        return self.process.poll() is None and not self.eof

    def kill(self) -> None:
        """Kill the zygote (its forked workers are not its group: their own lifelines and the pool stop them)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    def close(self) -> None:
        """Kill the zygote and release its socket, lifeline and log."""
        self.kill()
        self.eof = True
        self.control.close()
        os.close(self.lifeline)
        self.log_path.unlink(missing_ok=True)


class ForkedProcess:
    """A worker forked by a zygote, seen through the zygote's reports: what a Worker uses of subprocess.Popen."""

    def __init__(self, zygote: Zygote, number: int, stdin: BinaryIO) -> None:
        self.zygote, self.number, self.stdin = zygote, number, stdin
        self.returncode: int | None = None

    @property
    def pid(self) -> int | None:
        """The worker's pid; None until the zygote has forked it (it is still importing, or it ended first)."""
        if self.number not in self.zygote.forked:
            self.zygote.pump()
        return self.zygote.forked.get(self.number)

    def started(self, pid: int) -> None:
        """Take the pid the worker gave in its first message (which may come before the zygote's report)."""
        self.zygote.forked.setdefault(self.number, pid)

    @property
    def unforked(self) -> bool:
        """True when the zygote ended without forking this worker (its failure to start is the zygote's)."""
        return self.poll() is not None and self.number not in self.zygote.forked

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        zygote_ended = not self.zygote.alive()  # read before the last reports, which it sends before it ends
        self.zygote.pump()
        if self.number in self.zygote.exits:
            self.returncode = self.zygote.exits[self.number]
        elif zygote_ended:
            pid = self.zygote.forked.get(self.number)
            if pid is None:
                self.returncode = self.zygote.process.wait()
            elif not _running(pid):  # orphaned when its zygote died: how it ended is unknown
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self) -> int:
        while self.poll() is None:
            self.zygote.pump(0.05)
            if not self.zygote.alive():
                time.sleep(0.01)
        return self.returncode


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
