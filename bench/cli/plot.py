"""The `plot` command: draw the figures of results CSV(s) into plots/<run_id>/; also used after a sweep."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from bench.results import ResultsError
from bench.results.selection import REFERENCE_VARIANT

KNOWN_FORMATS = ("png", "svg", "pdf")


def _formats(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = [fmt for fmt in chosen if fmt not in KNOWN_FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"bad format {unknown[0] if unknown else text!r} (known: {', '.join(KNOWN_FORMATS)})")
    return chosen


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the plot command's options."""
    parser.add_argument("results", nargs="+", type=Path, metavar="RESULTS.csv",
                        help="results CSV(s); several are compared side by side")
    parser.add_argument("--out-dir", type=Path, help="folder for the figures (default: plots/<run_id>)")
    parser.add_argument("--formats", type=_formats, help="comma-separated: png, svg, pdf (default: png,svg)")


def run(args: argparse.Namespace) -> int:
    """Write the figures of the given CSVs and print their paths; return the exit status."""
    from bench.plots.figures import FIGURES, OPTIONAL_FIGURES, plot_csvs  # matplotlib only when drawing

    written = plot_csvs(args.results, args.out_dir, args.formats)
    width = max(map(len, [*FIGURES, *OPTIONAL_FIGURES])) + 1
    for name in FIGURES:
        print(f"{name:<{width}}" + ("  ".join(str(p) for p in written[name]) if name in written else
                                    f"not drawn: no ok {REFERENCE_VARIANT} rows to compare with"))
    for name in [name for name in OPTIONAL_FIGURES if name in written]:  # in a fixed order
        print(f"{name:<{width}}" + "  ".join(str(p) for p in written[name]))
    return 0


def plot_after_sweep(csv_path: Path, console: Console) -> None:
    """Draw the figures of a CSV a sweep just wrote; a CSV with nothing to plot is reported, not raised."""
    try:
        from bench.plots.figures import plot_csvs

        written = plot_csvs([csv_path])
    except ResultsError as err:
        console.print(f"[yellow]no figures[/]: {escape(str(err))}")
        return
    except Exception as err:  # the rows are saved whatever happens here: say so in one line, keep the exit status
        console.print("[red]figures failed[/]: " + escape(f"{type(err).__name__}: {err} (retry: run_bench.py plot {csv_path})"))
        return
    folder = next(iter(written.values()))[0].parent if written else None
    console.print(escape(f"figures ({', '.join(written)}) in {folder}/ (skip with --no-plots)"))
