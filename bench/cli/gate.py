"""The `gate` command: read a baseline and a current results CSV, print the verdicts, exit 1 on a regression."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from rich.table import Table

from bench import results
from bench.analysis.gate import (
    HEADERS, GateError, GateSettings, compare, counts, exit_status, machine, machine_note, markdown, mode_line,
    ordered_verdicts, table_cells, threads_note,
)
from bench.cli.console import wide_console

VERDICT_STYLE = {
    "regression": "bold red", "improvement": "green", "new": "cyan", "missing": "yellow", "not-comparable": "yellow",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the gate command's options to parser."""
    parser.add_argument("--baseline", required=True, type=Path,
                        help="the reference results CSV, or a directory of them: the one from this machine is used")
    parser.add_argument("--current", required=True, type=Path, help="the results CSV to judge")
    parser.add_argument("--tolerance", type=float, default=GateSettings.tolerance,
                        help="tolerated relative slowdown (default: %(default)s = 15%%)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--reference", default=GateSettings.reference,
                      help="variant whose median for the same case and file normalises each row (default: %(default)s)")
    mode.add_argument("--absolute", action="store_true", help="compare raw medians (baseline from this same machine)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the verdicts as a markdown table to FILE")


def pick_baseline(path: Path, current: pd.DataFrame) -> Path:
    """Return path, or for a directory its baseline CSV from current's machine (else its first CSV)."""
    if not path.is_dir():
        return path
    candidates = sorted(path.glob("*.csv"))
    if not candidates:
        raise GateError(f"no baseline CSV in {path}")
    wanted = machine(current)
    return next((c for c in candidates if machine(results.load(c)) == wanted), candidates[0])


def rich_table(verdicts: pd.DataFrame, settings: GateSettings) -> Table:
    """Return the verdicts as a rich table, regressions first."""
    summary = ", ".join(f"{n} {verdict}" for verdict, n in counts(verdicts).items() if n)
    table = Table(title=f"regression gate: {summary}", caption=mode_line(settings))
    for header in HEADERS:
        table.add_column(header, justify="right" if header.endswith(("ms", "change", "threshold")) else "left")
    for _, row in ordered_verdicts(verdicts).iterrows():
        table.add_row(*table_cells(row), style=VERDICT_STYLE.get(str(row["verdict"])))
    return table


def run(args: argparse.Namespace) -> int:
    """Load both CSVs, judge every case, print the table (and markdown); return 0, 1 on a regression.

    A regression fails only against a baseline from the same machine (same device names): across
    processors the ratios between variants move by more than any tolerance (docs/gate.md).
    """
    current = results.load(args.current)
    baseline = results.load(pick_baseline(args.baseline, current))
    settings = GateSettings(args.tolerance, None if args.absolute else args.reference)
    if settings.reference is not None and settings.reference not in set(baseline["variant"]) | set(current["variant"]):
        raise GateError(f"reference variant {settings.reference!r} is in neither CSV (pass --reference NAME or --absolute)")
    verdicts = compare(baseline, current, settings)
    console = wide_console(140)  # keep the table readable when piped into a CI log
    console.print(rich_table(verdicts, settings))
    advisory = machine_note(baseline, current)
    notes = [note for note in (threads_note(baseline, current), advisory) if note]
    for note in notes:
        console.print(f"[yellow]{note}[/]")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(verdicts, settings, bool(advisory)) + "".join(f"\n{note}\n" for note in notes))
    status = 0 if advisory else exit_status(verdicts)
    outcome = "pass, advisory" if advisory else "FAIL" if status else "pass"
    against = " against another machine" if advisory else ""
    console.print(f"gate: {outcome} ({counts(verdicts)['regression']} regression(s){against})")
    return status
