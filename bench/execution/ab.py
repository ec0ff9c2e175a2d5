"""A/B measurement: the same cases under two trees of variant code, interleaved case by case on one machine.

Two workers live side by side, one per side and fresh every round: the base worker imports the base revision's
`attention_variants` (a directory holding only a link to it goes first on its sys.path), the
current worker this tree's. Both are this harness's workers, so both sides are measured the
same way and only the variants' code differs. Each round visits the cases in an order drawn
from the seed; each case is measured by both workers back to back, the side that goes first
alternating from case to case and round to round, so the machine's drift over seconds to
minutes hits both sides alike and the two numbers of a pair were taken within a second or two.
Each side's rows go to its own CSV as soon as they are measured (column `round` = the A/B round).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from attention_variants.case import Case
from bench.execution.isolation import Isolation
from bench.execution.pool import WorkerPool
from bench.execution.rows import make_row
from bench.measure import machine, roofline
from bench.measure.settings import Settings
from bench.results import append_rows
from bench.results.samples import append_samples, take_samples

SIDES = ("base", "current")
# The A/B run sets these itself (its sweeps never draw: --no-plots is accepted, as by every command).
RESERVED_FLAGS = ("--out", "--resume", "--repeats", "--cases-per-worker")


class ABError(RuntimeError):
    """A side that cannot be measured (e.g. the base's variants do not import); one line, exit status 2."""


def reserved_flag(sweep_args: list[str]) -> str | None:
    """Return the first flag of sweep_args that the A/B run sets itself, or None."""
    return next((arg for arg in sweep_args for flag in RESERVED_FLAGS if arg == flag or arg.startswith(flag + "=")), None)


def side_order(step: int) -> tuple[str, str]:
    """Return which side goes first at an (odd or even) step: base at odd steps, current at even ones."""
    return SIDES if step % 2 else SIDES[::-1]


def variants_root(tree: Path, work: Path) -> Path:
    """Return a directory whose only entry links to tree's attention_variants (to go first on a worker's sys.path)."""
    root = Path(tempfile.mkdtemp(prefix="variants-", dir=work))
    (root / "attention_variants").symlink_to(tree / "attention_variants", target_is_directory=True)
    return root


def variant_names(import_first: tuple[str, ...]) -> list[str]:
    """Return the variants registered by the attention_variants that a worker with import_first would import."""
    code = "import sys, json; sys.path[:0] = json.loads(sys.argv[1]); import attention_variants as av; print(json.dumps(av.names()))"
    done = subprocess.run([sys.executable, "-c", code, json.dumps(list(import_first))], capture_output=True, text=True)
    if done.returncode:
        raise ABError(f"the variants of {import_first[0] if import_first else 'this tree'} do not import: "
                      f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_ab(cases: list[Case], settings: Settings, isolations: dict[str, Isolation], rounds: int, seed: int,
           out_dir: Path, run_id: str, commits: dict[str, str],
           on_row: Callable[[str, int, Case, dict[str, object]], None] = lambda side, r, case, row: None) -> dict[str, Path]:
    """Measure every case under both sides, rounds times, interleaved; return each side's CSV.

    Cases whose variant the base does not register are measured on the current side only.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {side: out_dir / f"{side}.csv" for side in SIDES}
    known = {side: set(variant_names(isolations[side].import_first)) for side in SIDES}
    settings = replace(settings, peaks=roofline.calibrate(cases, settings.threads, settings.peaks))
    fingerprint = {**machine.fingerprint(settings.threads), "allocator": isolations["current"].allocator}
    for round_number in range(1, rounds + 1):
        # Fresh workers every round: a process's memory layout can make a case persistently faster or
        # slower (measured: im2col 14x14 at 3.1 ms in one worker, 5.3 ms in another, same code), and
        # only new processes each round turn that bias into noise the rounds average out.
        with WorkerPool(isolations["base"]) as base_pool, WorkerPool(isolations["current"]) as current_pool:
            pools = {"base": base_pool, "current": current_pool}
            order = random.Random(f"ab/{seed}/{round_number}").sample(cases, len(cases))
            # Both workers start, and call each variant once, at the same time, before anything is timed:
            # imports and first calls (seconds per round) are paid once in parallel instead of twice in turn.
            first_of_each = list({case.variant: case for case in reversed(order)}.values())
            for side in SIDES:
                pools[side].launch([asdict(c) for c in first_of_each if c.variant in known[side]], asdict(settings))
            for side in SIDES:
                pools[side].ready()  # a worker that cannot start fails again at its first case, which records why
            for index, case in enumerate(order):
                for side in side_order(round_number + index):
                    if case.variant not in known[side]:
                        continue
                    measured = pools[side].measure(asdict(case), asdict(settings))
                    row = {**make_row(case, measured, run_id, fingerprint, settings.peaks, round_number), "git_sha": commits[side]}
                    samples = take_samples(row)
                    append_rows(paths[side], [row])
                    append_samples(paths[side], samples)
                    on_row(side, round_number, case, row)
    return paths
