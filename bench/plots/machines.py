"""The machines figure: the same case shapes measured on several machines (a merged cluster run), a colour per machine.

Which shapes and which row per machine: bench/analysis/across_machines.py. Each bar is one ok
row: the median over the rounds of the case's latest run on that machine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from bench.analysis.across_machines import machine_rows, ok_rows, shared_shapes
from bench.analysis.frames import run_label
from bench.analysis.labels import variant_order
from bench.plots.layout import finish, new_figure, whole_decades
from bench.plots.style import device_hatches, machine_colors
from bench.results.machines import machine_title, machines

MAX_PANELS = 4  # case shapes shown; the footnote counts the others
BAR_INCHES = 0.14  # per bar: room for its value label (6 pt) above and below
PANEL_INCHES = 1.0  # per panel: its two-line title, the x ticks and the x label


def _ms_text(ms: float) -> str:
    return f"{ms:.3g}" if ms < 1000 else f"{ms:.0f}"


def _label_room(low: float, high: float) -> float:
    """Return where the x axis must reach for the longest bar's value label (~0.25 in, a tenth of a narrow panel's axis)."""
    decades = max(1.0, np.ceil(np.log10(high)) - np.log10(low))
    return high * 1.08 * 10 ** (0.1 * decades)


def _bars_panel(ax: Axes, ok: pd.DataFrame, colors: dict[str, str], hatches: dict[str, str]) -> None:
    """A bar group per variant (the first on top), a bar per machine and device in the figure's order."""
    order = variant_order(ok["variant"])
    series = sorted(set(zip(ok["machine"], ok["device"])), key=lambda s: (list(colors).index(s[0]), list(hatches).index(s[1])))
    height = 0.8 / len(series)
    low = 10.0 ** np.floor(np.log10(ok["median_ms"].min()))  # bars start at the decade below the fastest
    for i, variant in enumerate(order):
        for j, (machine, device) in enumerate(series):
            hit = ok[(ok["variant"] == variant) & (ok["machine"] == machine) & (ok["device"] == device)]
            if hit.empty:
                continue  # no ok row of this variant there: no bar (the footnote says why)
            ms, y = float(hit["median_ms"].iloc[0]), i - 0.4 + height * (j + 0.5)
            ax.barh(y, ms - low, left=low, height=height * 0.9, color=colors[machine], hatch=hatches[device],
                    edgecolor="white", linewidth=0, gid=f"{machine}|{device}|{variant}")
            ax.text(ms * 1.08, y, _ms_text(ms), va="center", ha="left", fontsize=6)
    ax.set_yticks(range(len(order)), order, fontsize=7.5)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xscale("log")
    ax.set_xlim(low, _label_room(low, float(ok["median_ms"].max())))
    whole_decades(ax)
    ax.grid(True, axis="x", which="both", alpha=0.25)
    ax.set_xlabel("median latency (ms, log scale)", fontsize=8)


def _bar_count(rows: pd.DataFrame) -> int:
    """Return how many bar places a panel has: a group per variant, a place per machine and device in each."""
    return rows["variant"].nunique() * len(rows[["machine", "device"]].drop_duplicates())


def _panels(ok: pd.DataFrame, shapes: list[str]) -> tuple[Figure, list[Axes]]:
    """Return a figure with a panel per shape (two columns past two), each as tall as its bars need."""
    n_cols = 1 if len(shapes) <= 2 else 2
    n_rows = -(-len(shapes) // n_cols)
    bars = [_bar_count(ok[ok["shape"] == shape]) for shape in shapes]
    heights = [max(bars[r * n_cols:(r + 1) * n_cols]) * BAR_INCHES + PANEL_INCHES for r in range(n_rows)]
    fig = new_figure(n_rows, n_cols)
    fig.set_size_inches(fig.get_size_inches()[0], sum(heights))
    axes = fig.subplots(n_rows, n_cols, squeeze=False, gridspec_kw={"height_ratios": heights}).ravel()
    for ax in axes[len(shapes):]:
        ax.remove()
    return fig, list(axes[:len(shapes)])


def machines_figure(frame: pd.DataFrame) -> Figure | None:
    """Return the median ms of each variant per machine for the case shapes measured on several machines
    (None when the frame holds one machine, or no case shape ran ok on two)."""
    if len(machines(frame)) < 2:
        return None
    rows = machine_rows(frame)
    ok = ok_rows(rows)
    shapes = shared_shapes(ok)
    if not shapes:
        return None
    shown = shapes[:MAX_PANELS]
    ok = ok[ok["shape"].isin(shown)]
    colors = machine_colors(m for m in machines(rows) if m in set(ok["machine"]))
    hatches = device_hatches(ok["device"])
    fig, axes = _panels(ok, shown)
    for ax, shape in zip(axes, shown):
        _bars_panel(ax, ok[ok["shape"] == shape], colors, hatches)
        ax.set_title(shape, fontsize=9)
    handles = [Patch(color=color, label=machine_title(ok[ok["machine"] == machine])) for machine, color in colors.items()]
    notes = ["Each bar: the median over rounds of the case's latest run on that machine; a variant without a bar "
             "did not run ok there."]
    if len(hatches) > 1:  # e.g. a CPU node's cpu rows beside a GPU node's cuda rows
        handles += [Patch(facecolor="#999999", edgecolor="white", hatch=hatch, label=f"{device} rows")
                    for device, hatch in hatches.items()]
        notes.append("Cases are matched by shape whatever the device: the hatching tells the devices apart.")
    if len(shapes) > len(shown):
        notes.append(f"{len(shapes) - len(shown)} more case shape(s) measured on several machines are not shown "
                     "(shown: those measured on the most machines, then the largest).")
    what = "The same case on each machine (median latency; lower is better), a colour per machine"
    return finish(fig, rows[rows["shape"].isin(shown)], what, handles, notes,
                  subtitle=f"{len(colors)} machines · {run_label(rows)}")
