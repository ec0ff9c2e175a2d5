"""The `gate` command: read a baseline and a current results CSV, print the verdicts, exit 1 on a regression."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from rich.markup import escape
from rich.table import Table

from bench import results
from bench.analysis.ab import DEFAULT_TOLERANCE
from bench.analysis.gate import (
    RIGHT_ALIGNED,
    GateError,
    GateSettings,
    counts,
    exit_status,
    headers,
    markdown,
    mode_line,
    ordered_verdicts,
    several_machines,
    table_cells,
)
from bench.analysis.gate_pairs import Candidate, best_baseline, candidates, compared_text, judge, outcome_line, pair_machines
from bench.cli.ab_gate import run as run_ab
from bench.cli.common import CliError, integer
from bench.cli.console import verdict_table, wide_console
from bench.results.machines import UNKNOWN, per_machine

ROUNDS = 6  # the fewest for a 95 % interval (min..max, 96.9 %); more rounds narrow it: docs/gate.md


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the gate command's options to parser."""
    files = parser.add_argument_group("file mode: judge a results CSV against a baseline CSV")
    files.add_argument("--baseline", type=Path,
                       help="the reference results CSV (one machine's or merged), or a directory of them: each machine "
                            "of --current is judged against the baseline of the same host, else of the same hardware")
    files.add_argument("--current", type=Path, help="the results CSV to judge")
    ab = parser.add_argument_group("A/B mode: `gate --base-rev REV [sweep flags]` measures REV's code and the working "
                                   "tree's, interleaved, and judges per case with a 95 % interval")
    ab.add_argument("--base-rev", metavar="REV", help="the git revision to compare the working tree with")
    ab.add_argument("--rounds", type=integer(), default=ROUNDS, help="rounds; each runs the sweep once per side (default: %(default)s)")
    ab.add_argument("--no-instructions", action="store_true", help="skip the Callgrind instruction counts")
    ab.add_argument("--changed-only", action="store_true",
                    help="measure only the variants whose code (their module or a module of attention_variants/ they import) "
                         "differs between REV and the working tree; pass when none does (what CI runs)")
    ab.add_argument("--ab-dir", type=Path, metavar="DIR", help="where every round's CSV goes (default: results/ab/<time>)")
    parser.add_argument("--tolerance", type=float,
                        help=f"tolerated relative slowdown (default: {GateSettings.tolerance:.0%} in file mode, "
                             f"{DEFAULT_TOLERANCE:.0%} in A/B mode)".replace("%", "%%"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--reference", default=GateSettings.reference,
                      help="variant whose median for the same case and file normalises each row (default: %(default)s)")
    mode.add_argument("--absolute", action="store_true", help="compare raw medians (baseline from this same machine)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the verdicts as a markdown table to FILE")


def baseline_candidates(path: Path) -> list[Candidate]:
    """Return every machine (host) of the baseline: of one CSV, or of each CSV of a directory."""
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise GateError(f"no baseline CSV in {path}")
    return candidates([(str(file), results.load(file)) for file in files])


def pick_baseline(path: Path, current: pd.DataFrame) -> Path:
    """Return path, or for a directory the CSV holding the baseline of current's (first) machine (gate_pairs.best_baseline)."""
    if not path.is_dir():
        return path
    host, rows = (per_machine(current) or [(UNKNOWN, current)])[0]
    return Path(best_baseline(host, rows, baseline_candidates(path)).file)


def rich_table(verdicts: pd.DataFrame, settings: GateSettings, compared: str = "") -> Table:
    """Return the verdicts as a rich table, regressions first (with a `machine` column when of several machines)."""
    summary = ", ".join(f"{n} {verdict}" for verdict, n in counts(verdicts).items() if n)
    rows = [(table_cells(row, several_machines(verdicts)), str(row["verdict"])) for _, row in ordered_verdicts(verdicts).iterrows()]
    return verdict_table(f"regression gate: {summary}\n{escape(compared)}", mode_line(settings), headers(verdicts), RIGHT_ALIGNED, rows)


def run(args: argparse.Namespace, extra: list[str] = ()) -> int:
    """Run the A/B mode with --base-rev, else judge --current against --baseline; return 0, 1 on a regression."""
    if args.base_rev is not None:
        if args.baseline or args.current:
            raise CliError("--base-rev measures both sides itself: leave out --baseline and --current")
        return run_ab(args, list(extra))
    if extra or args.baseline is None or args.current is None:
        raise CliError(f"unrecognized arguments: {' '.join(extra)}" if extra else
                       "give --baseline and --current (file mode) or --base-rev REV (A/B mode)")
    return run_files(args)


def run_files(args: argparse.Namespace) -> int:
    """Load both sides, judge every case per machine, print the table (and markdown); return 0, 1 on a regression.

    Each machine (host) of --current is judged against the baseline of the same host or the same
    hardware; a regression fails only there: across processors the ratios between variants move
    by more than any tolerance (docs/gate.md), so against other hardware the verdicts are advisory.
    """
    if not args.current.exists():
        raise CliError(f"no results file at {args.current}: measure one first, e.g. "
                       f"`python run_bench.py --preset ci --threads 1 --out {args.current}` (the baselines' preset)")
    current = results.load(args.current)
    pairs = pair_machines(current, baseline_candidates(args.baseline))
    tolerance = GateSettings.tolerance if args.tolerance is None else args.tolerance
    settings = GateSettings(tolerance, None if args.absolute else args.reference)
    known = set(current["variant"]).union(*(set(pair.baseline.rows["variant"]) for pair in pairs))
    if settings.reference is not None and settings.reference not in known:
        raise GateError(f"reference variant {settings.reference!r} is in neither CSV (pass --reference NAME or --absolute)")
    verdicts, notes = judge(pairs, settings)
    compared = compared_text(pairs, str(args.current))
    console = wide_console(140)  # keep the table readable when piped into a CI log
    console.print(rich_table(verdicts, settings, compared))
    for note in notes:
        console.print(f"[yellow]{escape(note)}[/]")
    advisory = all(pair.advisory for pair in pairs)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(verdicts, settings, advisory, compared) + "".join(f"\n{note}\n" for note in notes))
    console.print(escape(outcome_line(verdicts, pairs)))
    return exit_status(verdicts)
