"""`paper`: the models of the paper's six speed arrows timed on this machine, the arrows judged, the figure redrawn.

The models command with its own preset (bench/presets/paper-figure.toml: batch 1, 224x224, forward, as
the paper's figure) and every flag of it; then the figure (bench/plots/paper.py) into
plots/<run_id>/paper.png. docs/paper.md says how each ratio is defined.
"""

from __future__ import annotations

import argparse

from rich.markup import escape

from bench.analysis.frames import plots_folder
from bench.cli.console import wide_console
from bench.cli.models import configure as configure_models
from bench.cli.models import measure

PRESET = "paper-figure"  # bench/presets/paper-figure.toml


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the models command's options, with the paper preset and a figure."""
    configure_models(parser, preset=PRESET, draws=True)


def run(args: argparse.Namespace) -> int:
    """Measure, print the six verdicts, draw the figure; return 0."""
    rows, _ = measure(args)
    if not args.no_plots and len(rows):
        from bench.plots import paper as figure  # matplotlib: only when drawing

        path = figure.draw(rows, plots_folder(rows) / "paper.png")
        wide_console(120).print(f"figure: {escape(str(path))}")
    return 0
