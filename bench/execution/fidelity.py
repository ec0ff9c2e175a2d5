"""The fidelity benchmark: does a case give the same number whatever ran before it, and the same as a plain script?

Each case of a fixed set is measured through the harness (a worker process, as in a sweep)
under three histories, and once by an independent plain process (plain_timing.py):
  fresh     alone in a new worker;
  after     in a worker that first ran every other case of the set;
  reversed  in a worker that runs the set in reversed order up to it;
  plain     `python -m bench.execution.plain_timing` in a new process, same allocator and threads.
The four processes of one case are prepared together (started, histories run, warmed up), then
take turns: each stops itself (SIGSTOP) after PACE_S of timed blocks and this process continues
the next, in an order drawn per cycle. So only one of them runs at a time, and the speed of this
VM, which moves by tens of percent over seconds, moves all four alike. The ratios are computed
by bench.analysis.fidelity; docs/fidelity.md has this machine's output.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, replace
from typing import Callable

import psutil

from attention_variants.case import Case
from bench.axes import case_columns
from bench.execution.isolation import Isolation
from bench.execution.pool import WorkerPool
from bench.execution.protocol import Task
from bench.execution.zygote import Zygote
from bench.measure import roofline
from bench.measure.record import Measured
from bench.measure.settings import Settings

VARIANTS = ("im2col", "slide", "local-tiled", "window")
HISTORIES = ("fresh", "after", "reversed")
CONDITIONS = (*HISTORIES, "plain")
PACE_S = 0.1  # timed seconds per turn


def fidelity_cases(batches: tuple[int, ...] = (1, 8)) -> list[Case]:
    """Return the fixed set: each variant at each batch, 56x56, heads 2, head_dim 32, k 7, float32 forward."""
    return [Case(variant=variant, batch=batch, height=56, width=56, heads=2, head_dim=32, kernel_size=7)
            for batch in batches for variant in VARIANTS]


def run_fidelity(cases: list[Case], settings: Settings, isolation: Isolation, rounds: int = 1, seed: int = 0,
                 on_row: Callable[[dict[str, object]], None] = lambda row: None) -> list[dict[str, object]]:
    """Return one row per (round, case, condition): the case's key, the condition and what was measured.

    The cases' order is drawn per round from the seed; rounds repeat the whole protocol, each
    in new processes.
    """
    settings = replace(settings, peaks=roofline.calibrate(cases, settings.threads, settings.peaks))
    rows: list[dict[str, object]] = []
    for round_number in range(1, rounds + 1):
        draw = random.Random(seed * 1_000 + round_number)
        for case in draw.sample(cases, len(cases)):
            for condition, measured in _in_turns(case, cases, settings, isolation, draw).items():
                rows.append({"round": round_number, **case_columns(case), "condition": condition, **measured})
                on_row(rows[-1])
    return rows


def histories(case: Case, cases: list[Case]) -> dict[str, list[Case]]:
    """Return, per history, the cases its worker runs before `case`."""
    return {"fresh": [],
            "after": [other for other in cases if other != case],  # every other case first
            "reversed": list(reversed(cases[cases.index(case) + 1:]))}  # the reversed set up to it


def _in_turns(case: Case, cases: list[Case], settings: Settings, isolation: Isolation,
              draw: random.Random) -> dict[str, dict[str, object]]:
    """Return the row of each condition of one case, its four processes measuring in turns."""
    brief = replace(settings, warmup_s=0.0, min_run_s=0.01, max_run_s=0.05)  # the others only need to have run
    paced = asdict(replace(settings, pace_s=PACE_S))
    rows: dict[str, dict[str, object]] = {}
    turns: dict[str, _Turn] = {}
    with ExitStack() as stack:
        pools = {name: stack.enter_context(WorkerPool(isolation)) for name in HISTORIES}
        for name, before in histories(case, cases).items():  # the workers start and run their histories together
            pool = pools[name]
            pool.launch()
            for other in before:
                pool.worker.send(Task(asdict(other), asdict(brief), pool.worker.cap))
            pool.worker.send(Task(asdict(case), paced, pool.worker.cap))
        plain = _start_plain(case, isolation)
        stack.callback(_kill, plain)
        for name, before in histories(case, cases).items():
            failed = pools[name].ready() or _first_failure(pools[name], before)
            if failed:
                rows[name] = failed.to_columns()
            else:
                worker = pools[name].worker
                turns[name] = _Turn(worker.process.pid, worker.results_fd,
                                    lambda w=worker: b"\n" in w.buffer or _readable(w.results_fd),  # its answer has come
                                    worker.zygote)
        turns["plain"] = _Turn(plain.pid, None, lambda: plain.poll() is not None)  # it exits when done
        woken = stack.enter_context(_woken_by_children())
        for name in _take_turns(turns, woken, draw, isolation.case_timeout_s):  # those that ran out of time
            (_kill(plain) if name == "plain" else pools[name].worker.kill())
            rows[name] = {"status": "timeout", "reason": f"a turn took more than {isolation.case_timeout_s:g} s; killed"}
        for name in turns:
            if name not in rows:
                rows[name] = _plain_row(plain) if name == "plain" else pools[name].worker.receive(asdict(case)).to_columns()
    return {condition: rows[condition] for condition in CONDITIONS}


def _take_turns(turns: dict[str, "_Turn"], woken: int, draw: random.Random, timeout_s: float) -> list[str]:
    """Let the processes run one at a time until each has finished; return those whose turn timed out.

    The first pass only waits until every process is ready to time (stopped before its first
    block); then each cycle continues them in an order drawn from `draw`.
    """
    waiting, first, timed_out = list(turns), True, []
    while waiting:
        for name in list(waiting) if first else draw.sample(waiting, len(waiting)):
            if not first:
                os.kill(turns[name].pid, signal.SIGCONT)
            ended = turns[name].wait(woken, timeout_s)
            if ended != "paused":
                waiting.remove(name)
            if ended == "timeout":
                timed_out.append(name)
        first = False
    return timed_out


def _first_failure(pool: WorkerPool, before: list[Case]) -> Measured | None:
    """Return the failure of the condition when a case of its history failed, else None."""
    for other in before:
        answer = pool.worker.receive(asdict(other))
        if answer.status not in ("ok", "skipped", "mismatch"):
            pool.retire()
            return Measured("error", f"its history failed at {other.variant} batch {other.batch}: {answer.reason}")
    return None


class _Turn:
    """A process measuring in turns: its pid, a file that becomes readable when it has finished (None: it exits), and
    the zygote that forked it (None: a child of this process)."""

    def __init__(self, pid: int, done_fd: int | None, finished: Callable[[], bool], zygote: Zygote | None = None) -> None:
        self.pid, self.done_fd, self.finished, self.zygote = pid, done_fd, finished, zygote

    def wait(self, woken: int, timeout_s: float) -> str:
        """Wait until the process stops itself ("paused"), finishes, or timeout_s passes ("timeout").

        Blocks in select on its done file and on `woken`, where a SIGCHLD (a child stopped or
        exited) writes a byte, or on its zygote, which reports when the worker stops: no polling,
        so this process takes nothing from the one timed.
        """
        deadline = time.monotonic() + timeout_s
        watched = [fd for fd in (woken, self.done_fd, self.zygote and self.zygote.fileno()) if fd is not None]
        while not self.finished():
            try:
                if psutil.Process(self.pid).status() == psutil.STATUS_STOPPED:
                    return "paused"
            except psutil.Error:
                return "finished"  # gone: its reader says how
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            readable = select.select(watched, [], [], left)[0]
            if woken in readable:
                os.read(woken, 4096)
            if self.zygote is not None:
                self.zygote.pump()
        return "finished"


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


@contextmanager
def _woken_by_children():
    """Yield a file that a byte is written to whenever a child of this process stops, continues or exits."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    handler = signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # the default ignores it: no wake-up byte
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    try:
        yield read_fd
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGCHLD, handler)
        os.close(read_fd)
        os.close(write_fd)


def _start_plain(case: Case, isolation: Isolation) -> subprocess.Popen:
    numbers = (case.batch, case.height, case.width, case.heads, case.head_dim, case.kernel_size, isolation.threads, PACE_S)
    return subprocess.Popen([sys.executable, "-m", "bench.execution.plain_timing", case.variant, *map(str, numbers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=isolation.worker_environment(),
                            start_new_session=True)  # as a worker: its own session, so its own scheduling autogroup


def _plain_row(plain: subprocess.Popen) -> dict[str, object]:
    out, err = plain.communicate()  # it has exited: its turns ended with "finished"
    if plain.returncode:
        return {"status": "error", "reason": (err.strip().splitlines() or [f"plain timing exited {plain.returncode}"])[-1]}
    return {"status": "ok", "median_ms": float(out.split()[-1])}


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.communicate()
