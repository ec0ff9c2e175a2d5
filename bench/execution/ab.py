"""A/B measurement: the same sweep under two trees of code, interleaved round by round on one machine.

Each round runs the sweep once with each side's own `run_bench.py` (a fresh process, so each
side's harness, variants and workers are its own), the side that goes first alternating from
round to round, so drift over minutes hits both sides alike and pairs measured in the same
minute can be compared. Each side's round goes to its own CSV; bench.analysis.ab pairs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SIDES = ("base", "current")
RESERVED_FLAGS = ("--out", "--resume", "--repeats", "--no-plots")  # the A/B run sets these itself


class ABError(RuntimeError):
    """A side's sweep failed (e.g. the base revision does not know a flag); one line, exit status 2."""


@dataclass(frozen=True)
class SideRound:
    """Where one side's sweep of one round wrote its rows, and how long it took."""

    side: str
    round: int
    csv: Path
    seconds: float


def reserved_flag(sweep_args: list[str]) -> str | None:
    """Return the first flag of sweep_args that the A/B run sets itself, or None."""
    return next((arg for arg in sweep_args for flag in RESERVED_FLAGS if arg == flag or arg.startswith(flag + "=")), None)


def side_order(round_number: int) -> tuple[str, str]:
    """Return which side runs first in a round: base in odd rounds, current in even ones."""
    return SIDES if round_number % 2 else SIDES[::-1]


def run_ab(roots: dict[str, Path], sweep_args: list[str], rounds: int, out_dir: Path,
           on_done: Callable[[SideRound], None] = lambda done: None) -> list[SideRound]:
    """Run the sweep rounds times under each side's root, alternating; return every side-round."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done: list[SideRound] = []
    for round_number in range(1, rounds + 1):
        for side in side_order(round_number):
            done.append(_sweep(side, round_number, roots[side], sweep_args, out_dir))
            on_done(done[-1])
    return done


def _sweep(side: str, round_number: int, root: Path, sweep_args: list[str], out_dir: Path) -> SideRound:
    csv, log = (out_dir / f"{side}-round{round_number:02d}{suffix}" for suffix in (".csv", ".log"))
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # each side imports its own code
    start = time.perf_counter()
    with log.open("w") as log_file:
        status = subprocess.run([sys.executable, str(root / "run_bench.py"), *sweep_args, "--no-plots", "--out", str(csv)],
                                cwd=root, env=environment, stdout=log_file, stderr=subprocess.STDOUT).returncode
    if status or not csv.is_file():
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        raise ABError(f"the {side} side's sweep failed in round {round_number} (exit {status}; log {log}): "
                      f"{lines[-1] if lines else 'no output'}")
    return SideRound(side, round_number, csv, time.perf_counter() - start)
