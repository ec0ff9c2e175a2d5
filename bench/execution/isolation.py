"""Parent side of case isolation: run each case in a worker subprocess, with a timeout and a memory cap.

Each row is reported before the next case starts; a worker that crashes, hangs, exceeds the
cap or reports a failure is killed (with its children) and replaced, so the case that was
running is the one blamed and the next case starts in a fresh process. A worker also retires
after `cases_per_worker` cases, which bounds what one case can leave behind (allocator
fragmentation, caches). Workers are forked from a zygote that imported torch once
(bench/execution/zygote.py): a fresh worker costs ~0.1 s, not a torch import.
"""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.execution import allocator as allocators
from bench.execution.process_tree import mapped_not_resident, open_fds, tree_rss
from bench.execution.protocol import BOOT, EXIT_STARTUP_FAILED, ProtocolError, Task, decode_message, encode_task
from bench.execution.zygote import ForkedProcess, Zygote
from bench.measure.record import Measured

POLL_S = 0.2  # how often the parent checks the clock while it waits
# How often it adds up the resident memory of the worker's process tree: a scan of /proc costs
# about 3 ms of CPU, taken from the case being timed (2 threads on 2 cores: 1.5 % at every 0.2 s).
MEMORY_WATCH_S = 1.0
RETIRE_AFTER = ("error", "oom", "timeout")  # a failed case may have left the process unusable


@dataclass(frozen=True)
class Isolation:
    """How cases are isolated: limits per case and how many cases one worker serves."""

    case_timeout_s: float = 300.0
    max_memory_gb: float | None = None  # memory one case may add to its worker; None: 80 % of this machine's
    cases_per_worker: int = 10  # 0: no worker, cases run in the sweep's own process
    plugins: tuple[str, ...] = ()
    startup_timeout_s: float = 180.0
    allocator: str = allocators.DEFAULT  # bench/execution/allocator.py
    threads: int | None = None  # every thread pool of a worker is pinned to this (None: left as inherited)
    import_first: tuple[str, ...] = ()  # put before the parent's sys.path in a worker (the A/B gate's base variants)
    forked: bool = True  # workers forked from a zygote; False: each started with Python (and its imports)

    def worker_environment(self) -> dict[str, str]:
        """Return the environment a worker starts with: this one, with the allocator and the thread pools set."""
        inherited = {key: value for key, value in os.environ.items() if key not in ("LD_PRELOAD", "GLIBC_TUNABLES")}
        pinned = allocators.environment(self.allocator, self.threads or 0)
        if self.threads is None:
            pinned = {key: value for key, value in pinned.items() if not key.endswith("_NUM_THREADS")}
        return {**inherited, **pinned}

    @property
    def max_memory_bytes(self) -> int:
        gb = self.max_memory_gb if self.max_memory_gb is not None else 0.8 * psutil.virtual_memory().total / 2**30
        return int(gb * 2**30)

    def boot_command(self) -> list[str]:
        """Return the command that starts a worker or a zygote of this isolation, less the descriptors it is given:
        `python -c BOOT SYS_PATH --plugin M ...`, its sys.path the first paths, then this process's."""
        paths = [*self.import_first, *(os.path.abspath(p) for p in sys.path)]
        return [sys.executable, "-c", BOOT, json.dumps(paths), *(f"--plugin={m}" for m in self.plugins)]

    def zygote(self, log_dir: Path) -> Zygote:
        """Start a zygote that forks workers of this isolation."""
        return Zygote(self.boot_command(), self.worker_environment(), log_dir)


class Worker:
    """One live worker subprocess, in its own process group, with a log of its output; forked by zygote when given."""

    def __init__(self, isolation: Isolation, log_dir: Path, zygote: Zygote | None = None) -> None:
        self.isolation = isolation
        self.cap = isolation.max_memory_bytes
        self.zygote = zygote
        self.log_path = Path(tempfile.mkstemp(dir=log_dir, prefix="worker-", suffix=".log")[1])
        read_fd, write_fd = os.pipe()
        lifeline_read, self.lifeline = os.pipe()  # closes when this process ends, however it ends
        with open(self.log_path, "wb") as log:
            if zygote is not None:
                self.process: subprocess.Popen | ForkedProcess = zygote.fork(write_fd, lifeline_read, log.fileno())
            else:
                command = [*isolation.boot_command(), f"--result-fd={write_fd}", f"--lifeline-fd={lifeline_read}"]
                self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=log,
                                                pass_fds=(write_fd, lifeline_read), start_new_session=True,
                                                env=isolation.worker_environment())
        os.close(write_fd)
        os.close(lifeline_read)
        self.results_fd = read_fd
        self.buffer = b""
        self.unanswered: collections.deque[str] = collections.deque()  # tokens of the tasks sent, oldest first
        self.slack = 0  # bytes the running case may add beyond the cap unseen by the address-space limit
        self.fds_at_start = 0

    def start(self) -> Measured | None:
        """Wait until the worker is ready; return the failure record if it never is, else None."""
        message = self._next_message(self.isolation.startup_timeout_s, "start-up limit")
        if isinstance(message, dict):  # {"ready": pid}
            if isinstance(self.process, ForkedProcess):
                self.process.started(message["ready"])
            self.fds_at_start = open_fds(self.process.pid)
            return None
        reason = message.reason
        if not reason.startswith("worker failed to start"):
            reason = f"worker failed to start: {reason}"
        return Measured("error", reason)

    def run(self, case: dict[str, object], task_settings: dict[str, object]) -> Measured:
        """Return what the worker measured of the case (its fields), or the failure record when it did not report."""
        base = self.memory_base(case)  # before the task: reading /proc costs this process ~50 ms of CPU, not during the timing
        self.send(Task(case, task_settings, self.cap))
        return self.receive(case, base)

    def send(self, task: Task) -> None:
        """Queue a task (read by the worker once it is ready and done with the tasks before it)."""
        self.unanswered.append(task.token)
        try:
            self.process.stdin.write(encode_task(task))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker died; _next_message says how

    def memory_base(self, case: dict[str, object]) -> int:
        """Return the resident memory the worker's tree may hold before the case adds any (the cap is counted from it)."""
        # On CPU the worker's own address-space limit (worker.py) stops its allocations at the cap;
        # pages it had mapped but not resident can become resident under that limit, so the watch
        # here allows for them and stays the backstop for processes the case starts (and for GPU cases).
        self.slack = mapped_not_resident(self.process.pid) if case.get("device") == "cpu" else 0
        return tree_rss(self.process.pid) + self.slack

    def receive(self, case: dict[str, object], base: int | None = None) -> Measured:
        """Return the worker's answer to its oldest unanswered task (of case), or the failure row when none comes; the
        memory watch counts from base (memory_base, taken now when not given)."""
        base = self.memory_base(case) if base is None else base
        token = self.unanswered.popleft() if self.unanswered else None
        answer = self._next_message(self.isolation.case_timeout_s, "--case-timeout", base, token)
        return answer if isinstance(answer, Measured) else Measured("error", "worker said it was ready twice")

    def _next_message(self, timeout_s: float, limit: str, base_rss: int = 0,
                      token: str | None = None) -> dict[str, object] | Measured:
        """Return the worker's next message ({"ready": pid} or a record), or the failure record when none comes."""
        deadline = time.monotonic() + timeout_s
        cap = base_rss + self.cap
        watched = time.monotonic()
        while b"\n" not in self.buffer:
            if self._read(POLL_S):
                continue
            if self.process.poll() is not None and not self._read(0):
                return self._death_row()
            if time.monotonic() > deadline:
                self.kill()
                return Measured("timeout", f"no result within {timeout_s:g} s ({limit}); worker killed")
            if time.monotonic() - watched < MEMORY_WATCH_S:
                continue
            watched = time.monotonic()
            if tree_rss(self.process.pid) > cap:
                self.kill()
                allowed = f" plus {self.slack / 2**30:.2g} GB the worker had mapped" if self.slack else ""
                return Measured("oom", f"the case grew its worker's resident memory by more than "
                                       f"{self.cap / 2**30:.3g} GB (--max-memory-gb){allowed}; worker killed")
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return decode_message(line, token)
        except ProtocolError as err:  # e.g. a variant that printed to the result pipe
            self.kill()
            return Measured("error", f"worker sent a malformed message ({err}); worker killed")

    def _read(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.results_fd], [], [], timeout_s)
        if not ready:
            return False
        chunk = os.read(self.results_fd, 1 << 16)
        self.buffer += chunk
        return bool(chunk)

    def _death_row(self) -> Measured:
        code = self.process.wait()
        unforked = isinstance(self.process, ForkedProcess) and self.process.unforked  # the zygote ended first
        log_path = self.zygote.log_path if unforked else self.log_path
        if code == EXIT_STARTUP_FAILED:
            return Measured("error", f"worker failed to start: {_log_hint(log_path, last_line=True)}")
        if code >= 0:
            return Measured("error", f"worker exited with status {code}; {_log_hint(log_path, last_line=True)}")
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
        hint = _log_hint(log_path)
        if name == "SIGKILL":  # we kill only after deciding the row, so this came from the kernel's OOM killer
            return Measured("oom", "worker killed by SIGKILL (the system probably ran out of memory)")
        return Measured("error", f"worker killed by {name}{'; ' + hint if hint else ''}")

    def kill(self) -> None:
        """Kill the worker and every process it started, then reap it."""
        if self.process.pid is None:  # its zygote has not forked it: still importing (or hung doing so)
            self.zygote.kill()
            return
        try:
            family = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            family = []
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the worker leads its own process group
        except (ProcessLookupError, PermissionError):
            pass
        for child in family:  # children that left the group (setsid) are still its descendants
            try:
                child.kill()
            except psutil.Error:
                pass
        self.process.wait()

    def close(self) -> None:
        """Stop the worker (killing it if it is still alive) and release its pipe and log."""
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdin,):
            try:
                stream.close()
            except OSError:
                pass
        os.close(self.results_fd)
        os.close(self.lifeline)
        self.log_path.unlink(missing_ok=True)


def _log_hint(log_path: Path, last_line: bool = False) -> str:
    try:
        with open(log_path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 8192))
            lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    for marker in ("what():", "Fatal Python error"):  # a C++ exception, then faulthandler's headline
        found = [line for line in lines if marker in line]
        if found:
            return found[-1][:300]
    return lines[-1][:300] if last_line and lines else ""
