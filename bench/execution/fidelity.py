"""The fidelity benchmark: does a case give the same number whatever ran before it, and the same as a plain script?

Each case of a fixed set is measured through the harness (a worker process, as in a sweep)
under three histories, and once by an independent plain process (plain_timing.py):
  fresh     alone in a new worker;
  after     in a worker that first ran every other case of the set;
  reversed  in a worker that runs the set in reversed order up to it;
  plain     `python -m bench.execution.plain_timing` in a new process, same allocator and threads.
The ratios are computed by bench.analysis.fidelity; docs/fidelity.md has this machine's output.
"""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import asdict, replace
from typing import Callable

from attention_variants.case import Case
from bench.execution.isolation import Isolation, WorkerPool
from bench.measure import roofline
from bench.measure.settings import Settings

VARIANTS = ("im2col", "slide", "local-tiled", "window")
CONDITIONS = ("fresh", "after", "reversed", "plain")


def fidelity_cases(batches: tuple[int, ...] = (1, 8)) -> list[Case]:
    """Return the fixed set: each variant at each batch, 56x56, heads 2, head_dim 32, k 7, float32 forward."""
    return [Case(variant, batch=batch, height=56, width=56, heads=2, head_dim=32, kernel_size=7)
            for batch in batches for variant in VARIANTS]


def _timed(pool: WorkerPool, case: Case, settings: Settings) -> dict[str, object]:
    return pool.measure(asdict(case), asdict(settings))


def _plain(case: Case, isolation: Isolation) -> dict[str, object]:
    numbers = (case.batch, case.height, case.width, case.heads, case.head_dim, case.kernel_size, isolation.threads)
    done = subprocess.run([sys.executable, "-m", "bench.execution.plain_timing", case.variant, *map(str, numbers)],
                          capture_output=True, text=True, env=isolation.worker_environment(), timeout=isolation.case_timeout_s)
    if done.returncode:
        return {"status": "error", "reason": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return {"status": "ok", "median_ms": float(done.stdout.split()[-1])}


def run_fidelity(cases: list[Case], settings: Settings, isolation: Isolation, rounds: int = 1, seed: int = 0,
                 on_row: Callable[[dict[str, object]], None] = lambda row: None) -> list[dict[str, object]]:
    """Return one row per (round, case, condition): the case's key, the condition and what was measured.

    The four conditions of one case run back to back, in an order drawn per round from the seed,
    so load that comes and goes over minutes moves them together and no condition is always
    first; the cases' order is drawn per round too. Rounds repeat the whole protocol.
    """
    settings = replace(settings, peaks=roofline.calibrate(cases, settings.threads, settings.peaks))
    brief = replace(settings, warmup_s=0.0, min_run_s=0.01, max_run_s=0.05)  # the others only need to have run
    rows: list[dict[str, object]] = []
    for round_number in range(1, rounds + 1):
        draw = random.Random(seed * 1_000 + round_number)
        for case in draw.sample(cases, len(cases)):
            for condition in draw.sample(CONDITIONS, len(CONDITIONS)):
                measured = _condition(condition, case, cases, settings, brief, isolation)
                rows.append({"round": round_number, **case.key(), "condition": condition, **measured})
                on_row(rows[-1])
    return rows


def _condition(condition: str, case: Case, cases: list[Case], settings: Settings, brief: Settings,
               isolation: Isolation) -> dict[str, object]:
    if condition == "plain":
        return _plain(case, isolation)
    before = {"fresh": [],
              "after": [other for other in cases if other != case],  # every other case first
              "reversed": list(reversed(cases[cases.index(case) + 1:]))}[condition]  # the reversed set up to it
    with WorkerPool(isolation) as pool:
        for other in before:
            _timed(pool, other, brief)
        return _timed(pool, case, settings)
