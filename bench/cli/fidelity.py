"""The `fidelity` command: the same case under other histories and in a plain process, and how far its number moves."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from rich.markup import escape
from rich.table import Table

from bench.analysis.fidelity import HISTORIES, HISTORY_TARGET, PLAIN_TARGET, fidelity_table
from bench.axes import MAX_SIZE, ascii_integer
from bench.cli.common import MAX_SEED, CliError, add_no_plots_option, integer
from bench.cli.console import message_console, wide_console
from bench.execution import allocator as allocators
from bench.execution.early import default_threads
from bench.execution.fidelity import CONDITIONS, fidelity_cases, run_fidelity
from bench.execution.isolation import Isolation
from bench.measure.probes import busy_report, cpu_name
from bench.measure.settings import Settings
from bench.results import unwritable

# The columns of --out: what was measured, under which condition, and what the process paid for it.
OUT_COLUMNS = ["round", "variant", "device", "dtype", "batch", "height", "width", "heads", "head_dim", "kernel_size", "runtime",
               "pass", "condition", "status", "reason", "median_ms", "iqr_ms", "min_ms", "n_measurements", "minor_faults_per_call",
               "major_faults_per_call", "voluntary_switches_per_call", "involuntary_switches_per_call", "allocator", "threads", "cpu"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the fidelity command's options."""
    parser.add_argument("--allocator", default=allocators.DEFAULT, choices=list(allocators.ALLOCATORS),
                        help="C allocator of every process measured (default: %(default)s)")
    add_no_plots_option(parser, draws=False)
    parser.add_argument("--threads", type=integer(), default=default_threads(), help="threads (default: %(default)s)")
    parser.add_argument("--batch", default="1,8", help="batch sizes of the fixed cases (default: %(default)s)")
    parser.add_argument("--min-run-s", type=float, default=0.5, help="least measuring time per case (default: %(default)s)")
    parser.add_argument("--rounds", type=integer(), default=2, help="repeat the whole protocol; medians over rounds (default: %(default)s)")
    parser.add_argument("--seed", type=integer(0, MAX_SEED), default=0,
                        help="draws each round's order of cases and conditions (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="also write every measurement to this CSV (replaced), row by row")


def result_table(table: pd.DataFrame) -> Table:
    """Return the per-case ratios as a rich table."""
    out = Table(title="fidelity: median ms per history and in a plain process (median over rounds); ratios within each round, then median",
                caption=f"targets: max/min across {', '.join(HISTORIES)} within {HISTORY_TARGET:.0%}; "
                        f"each within {PLAIN_TARGET:.0%} of plain")
    for header in ("variant", "batch", *CONDITIONS, "max/min", "worst vs plain"):
        out.add_column(header, justify="left" if header == "variant" else "right")
    for _, row in table.iterrows():
        mark = lambda good, text: text if good else f"[bold red]{text}[/]"  # noqa: E731
        out.add_row(row["variant"], str(row["batch"]), *(f"{row[c]:.3f}" if pd.notna(row[c]) else "-" for c in CONDITIONS),
                    mark(row["within_histories"], f"{row['spread']:.3f}"), mark(row["within_plain"], f"{row['vs_plain']:.3f}"))
    return out


def run(args: argparse.Namespace) -> int:
    """Measure the fixed cases under every condition, print the table (and write the CSV); return 0."""
    problem = allocators.unavailable(args.allocator)
    batches = tuple(ascii_integer(b) for b in args.batch.split(","))
    if not all(batch is not None and 0 < batch <= MAX_SIZE for batch in batches):
        raise CliError(f"bad --batch {args.batch!r}: expected positive integers in ASCII digits, e.g. 1,8")
    if problem or not args.min_run_s > 0:
        raise CliError(problem or f"bad --min-run-s {args.min_run_s}: expected a positive number of seconds")
    if args.out and unwritable(args.out):
        raise CliError(f"cannot write --out: {unwritable(args.out)}")
    console = message_console()
    busy = busy_report()
    if busy:
        console.print(f"[yellow]warning[/]: {busy}; the ratios will say more about the load than about the harness")
    cases = fidelity_cases(batches)
    console.print(f"fidelity: {len(cases)} cases x {len(CONDITIONS)} conditions x {args.rounds} rounds, {args.threads} threads, "
                  f"allocator {args.allocator}, {cpu_name()}")
    settings = Settings(args.threads, warmup_s=0.1, min_run_s=args.min_run_s, max_run_s=4 * args.min_run_s,
                        allocator=args.allocator)
    isolation = Isolation(cases_per_worker=10_000, allocator=args.allocator, threads=args.threads)
    extra = {"allocator": args.allocator, "threads": args.threads, "cpu": cpu_name()}
    if args.out:  # written row by row: a run stopped half-way keeps what it measured
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(columns=OUT_COLUMNS).to_csv(args.out, index=False)

    def on_row(row: dict[str, object]) -> None:
        console.print(f"  round {row['round']} {row['condition']:<9} {row['variant']:<12} b{row['batch']}: "
                      + (f"{row['median_ms']:.3f} ms" if row["status"] == "ok" else escape(f"{row['status']}: {row.get('reason')}")))
        if args.out:
            pd.DataFrame([{**row, **extra}]).reindex(columns=OUT_COLUMNS).to_csv(args.out, mode="a", header=False, index=False)

    rows = pd.DataFrame(run_fidelity(cases, settings, isolation, args.rounds, args.seed, on_row))
    table = fidelity_table(rows)
    wide_console().print(result_table(table))
    met = int((table["within_histories"] & table["within_plain"]).sum())
    console.print(f"{met} of {len(table)} cases meet both targets")
    return 0
