"""The `merge` command: one results CSV from the CSVs of several machines or shards (files or folders)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from bench.cli.common import CliError
from bench.cli.console import message_console
from bench.results.merge import expand, merge_files, summary, write_merged


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the merge command's options."""
    parser.add_argument("inputs", nargs="+", type=Path, metavar="CSV_OR_DIR",
                        help="results CSVs, or folders whose *.csv are merged (e.g. a cluster run's results/<run_id>/)")
    parser.add_argument("--out", type=Path, required=True, help="the merged CSV; an existing one must be among the inputs")


def run(args: argparse.Namespace) -> int:
    """Merge the inputs into --out; return 0."""
    inputs = expand(args.inputs)
    if args.out.exists() and args.out.resolve() not in {path.resolve() for path in inputs}:
        raise CliError(f"{args.out} exists and is not an input: name it as an input too to merge into it, "
                       "or choose another --out (nothing is overwritten)")
    if args.out.suffix != ".csv":
        raise CliError(f"bad --out {args.out}: a results file ends in .csv")
    merged = merge_files(inputs)
    write_merged(merged, args.out)
    console = message_console()
    for note in merged.notes:
        console.print(f"[yellow]note[/]: {escape(note)}")
    console.print(escape(summary(merged, args.out)))
    return 0
