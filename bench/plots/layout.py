"""The frame shared by all figures: a grid of panels, title, legend, footnote of unmeasured cases."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.analysis.frames import machine_label, not_ok_lines, panel_title, run_label
from bench.analysis.labels import variant_order
from bench.plots.style import variant_styles
from bench.results.machines import machines

PANEL_SIZE = (4.6, 3.3)  # inches per panel


def new_figure(n_rows: int, n_cols: int) -> Figure:
    # _finish adds the height of the title, legend and footnote.
    fig = Figure(figsize=(max(7.0, PANEL_SIZE[0] * n_cols + 0.8), PANEL_SIZE[1] * n_rows + 0.2), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def grid(frame: pd.DataFrame, keys: list[str]) -> tuple[Figure, list[tuple[Axes, pd.DataFrame]]]:
    """Return a figure with one column per facet and one row per value of `keys`, and its panels' rows."""
    facets = list(dict.fromkeys(frame["facet"]))
    row_keys = sorted(frame[keys].drop_duplicates().itertuples(index=False, name=None), key=str)
    fig = new_figure(len(row_keys), len(facets))
    axes = fig.subplots(len(row_keys), len(facets), squeeze=False, sharey="row")
    panels = []
    for r, row_key in enumerate(row_keys):
        for c, facet in enumerate(facets):
            ax = axes[r][c]
            mask = (frame["facet"] == facet) & (frame[keys] == pd.Series(row_key, index=keys)).all(axis=1)
            rows = frame[mask]
            if rows.empty:
                ax.text(0.5, 0.5, "no cases here", ha="center", va="center", transform=ax.transAxes, color="grey")
                ax.set_xticks([]), ax.set_yticks([])
                continue
            title = panel_title(rows)
            ax.set_title(f"{facet}\n{title}" if len(facets) > 1 else title, fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
            panels.append((ax, rows))
    return fig, panels


def _title(frame: pd.DataFrame, what: str, subtitle: str | None) -> str:
    if subtitle:
        return f"{what}\n{subtitle}"
    if frame["source"].nunique() > 1:
        return f"{what}\n{frame['source'].nunique()} result sets side by side (one column each)"
    hosts = machines(frame)
    if len(hosts) > 1:  # one file merged from several machines: each has its own column(s), named above them
        return f"{what}\n{len(hosts)} machines side by side (one column each) · {run_label(frame)}"
    return f"{what}\n{machine_label(frame)} · {run_label(frame)}"


def finish(fig: Figure, frame: pd.DataFrame, what: str, handles: list[Artist], notes: list[str],
           subtitle: str | None = None) -> Figure:
    """Add the title (subtitle: the machine and run, unless given) and the shared legend above the panels,
    and the footnote of what was not measured."""
    lines = not_ok_lines(frame)
    if lines:
        notes = ["Not drawn, no valid result:", *lines, *notes]
    # Sizes in inches from the font sizes (title lines at 11 pt, legend rows at 8 pt, notes at 7.5 pt),
    # so that the saved image needs no second "tight" layout pass.
    width, body = fig.get_size_inches()
    notes = [wrapped for note in notes for wrapped in textwrap.wrap(note, int(width * 17), subsequent_indent="    ")]
    longest = max((len(h.get_label()) for h in handles), default=1)  # 8 pt: about 0.07 inch per character
    ncols = max(1, min(len(handles), int((width - 0.2) / (0.07 * longest + 0.6))))
    title = "\n".join(wrapped for line in _title(frame, what, subtitle).splitlines()
                      for wrapped in textwrap.wrap(line, int(width * 12)))  # 11 pt: about 12 characters per inch
    title_height = 0.15 + 0.19 * (title.count("\n") + 1)
    header = title_height + 0.22 * -(-len(handles) // ncols) + 0.15
    footer = 0.13 * len(notes) + 0.15
    height = body + header + footer
    fig.set_size_inches(width, height)
    fig.get_layout_engine().set(rect=(0, footer / height, 1, body / height))
    fig.text(0.5, 1 - 0.06 / height, title, ha="center", va="top", fontsize=11)
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - title_height / height), ncols=ncols,
               fontsize=8, frameon=False)
    if notes:
        fig.text(0.01, (footer - 0.08) / height, "\n".join(notes), ha="left", va="top", fontsize=7.5, color="#444444")
    return fig


def variant_handles(frame: pd.DataFrame) -> list[Line2D]:
    """Return one legend entry per variant (its colour and marker), labelled with its family."""
    styles = variant_styles(frame["variant"])
    families = frame.drop_duplicates("variant").set_index("variant")["family"]
    return [Line2D([], [], color=styles[v].color, marker=styles[v].marker,
                   label=v if families[v] == v else f"{v} ({families[v]})") for v in variant_order(frame["variant"])]


def log_axis(ax: Axes, axis: str, ticks: dict[float, str]) -> None:
    """Make an axis logarithmic with ticks only at the given values."""
    set_scale, target = (ax.set_xscale, ax.xaxis) if axis == "x" else (ax.set_yscale, ax.yaxis)
    set_scale("log")
    target.set_major_locator(ticker.FixedLocator(list(ticks)))
    target.set_major_formatter(ticker.FixedFormatter(list(ticks.values())))
    target.set_minor_locator(ticker.NullLocator())


def whole_decades(ax: Axes) -> None:
    """Make a log x axis span whole decades, labelled at powers of ten only: within one decade,
    matplotlib labels the minor ticks, and neighbours such as 3x10^-7 and 4x10^-7 collide."""
    low, high = ax.get_xlim()
    if not ax.has_data() or low <= 0:  # nothing drawn (a device where nothing ran): a valid empty range
        low, high = 1e-8, 1.0
    ax.set_xlim(10 ** np.floor(np.log10(low)), 10 ** max(np.ceil(np.log10(high)), np.floor(np.log10(low)) + 1))
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, numticks=8))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
