"""Timing with torch.utils.benchmark: warm-up by time, then adaptive repeated measurement.

Why this way: a fixed warm-up count is too short for slow cases and wasteful for fast ones,
so warm-up runs for a time budget (first call included: compile, caches, allocator).
`Timer.adaptive_autorange` then picks a block size so that timer overhead is negligible,
synchronises CUDA around each block, and repeats blocks until IQR/median < 10 % or the
time budget is spent (at least 4 blocks unless one block alone exceeds the budget).
Times are per call: torch divides each block by its number of calls, so nothing here
multiplies by an iteration count again. Medians, never means: one preemption on a shared
machine moves a mean, not a median.

Page faults and context switches per call come from getrusage read between measured blocks
(the Timer's callback, outside any timed region): many minor faults mean the call maps fresh
memory (see bench/execution/allocator.py), many involuntary switches a busy machine.
"""

from __future__ import annotations

import os
import resource
import signal
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils import benchmark

from bench.results.selection import NOISE_THRESHOLD, is_noisy


@dataclass(frozen=True)
class Timing:
    """What was observed: the raw per-call time of each measured block, and statistics over them, in ms."""

    median_ms: float
    iqr_ms: float
    min_ms: float
    n_measurements: int
    warmup_calls: int
    block_times_ms: tuple[float, ...] = ()  # one per-call time per block, in measuring order
    per_call: dict[str, float] = field(default_factory=dict)  # RUSAGE_COLUMNS -> count per call

    @property
    def noisy(self) -> bool:
        return is_noisy(self.iqr_ms, self.median_ms)


def synchronize(device: str) -> None:
    """Wait for queued work on `device` to finish."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


SETTLED_FAULTS = 64  # a call that maps fewer new pages than this reuses its memory: the allocator is steady
SETTLE_LIMIT_S = 2.0  # the most extra warm-up spent waiting for that


def warm_up(fn: Callable[[], object], device: str, seconds: float, settle: bool = False, max_calls: int = 1000) -> int:
    """Call fn for at least `seconds` (and at least twice); return how many calls were made.

    With `settle` (the steady allocator), go on until a call maps almost no new pages, for at
    most SETTLE_LIMIT_S more: a heap still growing in the timed calls would charge them page
    faults that later calls do not pay (seen: Im2Col batch 8 in a fresh worker).
    """
    calls, start = 0, time.perf_counter()
    faults = SETTLED_FAULTS
    while calls < 2 or (time.perf_counter() - start < seconds and calls < max_calls) or (
            settle and faults >= SETTLED_FAULTS and time.perf_counter() - start < seconds + SETTLE_LIMIT_S):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        fn()
        synchronize(device)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        calls += 1
    return calls


# Column -> the getrusage field counted per call.
RUSAGE_COLUMNS = {
    "minor_faults_per_call": "ru_minflt",
    "major_faults_per_call": "ru_majflt",
    "voluntary_switches_per_call": "ru_nvcsw",
    "involuntary_switches_per_call": "ru_nivcsw",
}


def _per_call(spans: list[tuple[resource.struct_rusage, resource.struct_rusage]], calls: int) -> dict[str, float]:
    return {column: sum(getattr(end, name) - getattr(start, name) for start, end in spans) / calls
            for column, name in RUSAGE_COLUMNS.items()}


def pause() -> None:
    """Stop this process (SIGSTOP) until its parent continues it: a turn of `pace_s` timing is over."""
    os.kill(os.getpid(), signal.SIGSTOP)


def measure(
    fn: Callable[[], object], device: str, threads: int, warmup_s: float, min_run_s: float, max_run_s: float,
    settle: bool = False, pace_s: float = 0.0,
) -> Timing:
    """Return the timing of fn after warm-up, measured by torch.utils.benchmark, with its faults and switches per call.

    With `pace_s` (the fidelity command) the process stops itself before its first timed block,
    after each `pace_s` of timed blocks and after the last, so that its parent can take turns between processes
    measuring the same case: what drifts on this machine over seconds then hits all of them.
    The pauses fall between blocks, outside every timed region and outside the Timer's budget.
    """
    warmup_calls = warm_up(fn, device, warmup_s, settle)
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    if pace_s:
        pause()
    blocks = _Blocks(pace_s)
    m = timer.adaptive_autorange(threshold=NOISE_THRESHOLD, min_run_time=min_run_s, max_run_time=max_run_s,
                                 callback=blocks.after_block)
    if pace_s:
        pause()  # what follows (peak memory, ...) then runs in a turn of its own, beside nothing timed
    return Timing(
        median_ms=m.median * 1e3,
        iqr_ms=m.iqr * 1e3,
        min_ms=min(m.times) * 1e3,
        n_measurements=len(m.times),
        warmup_calls=warmup_calls,
        block_times_ms=tuple(t * 1e3 for t in m.times),
        per_call=blocks.per_call(m.number_per_run),
    )


class _Blocks:
    """getrusage at the start and the end of each measured block (so a pause is never counted), and the pauses."""

    def __init__(self, pace_s: float) -> None:
        self.pace_s, self.turn = pace_s, 0.0  # turn: timed seconds since the last pause
        self.starts, self.ends = [resource.getrusage(resource.RUSAGE_SELF)], []

    def after_block(self, number: int, seconds: float) -> None:
        self.ends.append(resource.getrusage(resource.RUSAGE_SELF))
        self.turn += seconds
        if self.pace_s and self.turn >= self.pace_s:
            self.turn = 0.0
            pause()
        self.starts.append(resource.getrusage(resource.RUSAGE_SELF))

    def per_call(self, number: int) -> dict[str, float]:
        """Return faults and switches per call: over the blocks after the first (exactly their calls), or with
        one block, over it and the block-size estimate before it (1 + 10 + ... + number calls)."""
        if len(self.ends) > 1:
            return _per_call(list(zip(self.starts[1:], self.ends[1:])), number * (len(self.ends) - 1))
        return _per_call([(self.starts[0], self.ends[0])], number + (10 * number - 1) // 9)
