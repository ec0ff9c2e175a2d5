"""The `report` command: write a markdown report (or with --html one self-contained page) next to a results CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from bench.analysis import models
from bench.analysis.frames import load_results, plots_folder
from bench.analysis.html_report import to_html
from bench.analysis.report import blocks, to_markdown
from bench.cli.common import CliError
from bench.results import load


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the report command's options."""
    parser.add_argument("results", type=Path, metavar="RESULTS.csv", help="results CSV; the report is RESULTS.md")
    parser.add_argument("--html", action="store_true",
                        help="write RESULTS.html instead: one page with the figures embedded and sortable tables, readable offline")
    parser.add_argument("--no-plots", action="store_true", help="do not draw the figures (link none)")


def figures_for(frame: pd.DataFrame, csv_path: Path) -> dict[str, list[Path]]:
    """Return the CSV's figures in plots/<run_id>/: those already drawn after the CSV changed, else new ones."""
    from bench.plots.figures import FIGURES, OPTIONAL_FIGURES, make_figures  # matplotlib only when figures are drawn

    folder = plots_folder(frame)
    fresh = {name: [folder / f"{name}.png"] for name in [*FIGURES, *OPTIONAL_FIGURES]
             if (folder / f"{name}.png").is_file() and (folder / f"{name}.png").stat().st_mtime >= csv_path.stat().st_mtime}
    return fresh or make_figures(frame, folder)


def run(args: argparse.Namespace) -> int:
    """Write the markdown report next to the CSV (with its figures); return 0."""
    raw = load(args.results)
    model_rows = models.model_rows(raw)  # every round: the claims' intervals come from them
    frame = load_results([args.results]) if len(model_rows) < len(raw) else raw.iloc[0:0]
    frame = frame.drop(models.model_rows(frame).index)
    out = args.results.with_suffix(".html" if args.html else ".md")
    if out.resolve() == args.results.resolve():
        raise CliError(f"the report would overwrite its own input {args.results}: give the results file a .csv name")
    figures = {} if args.no_plots or frame.empty else figures_for(frame, args.results)
    parts = blocks(frame, args.results, figures, model_rows, all_rounds=raw)
    out.write_text(to_html(parts) if args.html else to_markdown(parts, out))
    print(out)
    return 0
