"""The runtimes figure: each variant's median under each runtime (eager, inductor, export, onnxruntime), a panel per case shape.

Which rows and ratios: bench/analysis/runtimes.py. A bar is one ok row; a slot where the variant
did not run under that runtime has no bar but a grey × at its foot, so that a missing bar never
reads as a fast one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.analysis.labels import variant_order
from bench.analysis.runtimes import runtimes_present, shape_groups
from bench.analysis.summary import times
from bench.plots.layout import PANEL_SIZE, finish, new_figure
from bench.plots.style import runtime_colors

MAX_PANELS = 6  # case shapes shown; the footnote counts the others
BAR_INCHES = 0.14  # per bar: wider than its rotated 6 pt ratio label
CHAR_INCHES = 0.055  # a 7.5 pt character: the variant names stand upright under each panel


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["status"] == "ok") & (rows["median_ms"] > 0)]


def _y_range(ok: pd.DataFrame) -> tuple[float, float]:
    """Return the log axis' range: from the power of ten below the fastest bar (strictly: a 10 ms bar has a height),
    at least a decade, with room above the slowest bar for its label."""
    if ok.empty:
        return 1.0, 10.0
    low = 10.0 ** (np.ceil(np.log10(ok["median_ms"].min())) - 1)
    high = float(ok["median_ms"].max())
    return low, max(10 * low, high * 10 ** (0.25 * max(1.0, np.log10(high / low))))


def _slot(ax: Axes, x: float, width: float, low: float, runtime: str, variant: str, hit: pd.DataFrame, color: str) -> bool:
    """Draw one variant x runtime slot: its bar and ratio to eager, or a grey × at the foot; return whether it ran ok."""
    row = hit.iloc[-1] if len(hit) else None
    if row is None or row["status"] != "ok" or not row["median_ms"] > 0:
        ax.text(x, low, "×", ha="center", va="bottom", color="grey", fontsize=7, gid=f"not-run|{runtime}|{variant}")
        return False
    ms = float(row["median_ms"])
    ax.bar(x, ms - low, bottom=low, width=width * 0.9, color=color, gid=f"{runtime}|{variant}")
    if runtime != "eager" and pd.notna(row["eager_ratio"]):
        ax.annotate(times(row["eager_ratio"]), (x, ms), xytext=(0, 2), textcoords="offset points", ha="center",
                    va="bottom", fontsize=6, rotation=90, gid=f"ratio|{runtime}|{variant}")
    return True


def _panel(ax: Axes, rows: pd.DataFrame, runtimes: list[str], colors: dict[str, str]) -> int:
    """Draw one case shape: a bar group per variant, a slot per runtime; return how many slots drew a ×."""
    order = variant_order(rows["variant"])
    width = 0.8 / len(runtimes)
    low, top = _y_range(_ok(rows))
    missing = 0
    for i, variant in enumerate(order):
        mine = rows[rows["variant"] == variant]
        for j, runtime in enumerate(runtimes):
            x = i - 0.4 + width * (j + 0.5)
            missing += not _slot(ax, x, width, low, runtime, variant, mine[mine["runtime"] == runtime], colors[runtime])
    ax.set_yscale("log")
    ax.set_ylim(low, top)
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())  # within a decade matplotlib labels minor ticks: they crowd
    ax.set_xticks(range(len(order)), order, rotation=90, fontsize=7.5)  # slanted names' boxes would overlap
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.grid(True, axis="y", which="major", alpha=0.3)
    ax.set_ylabel("median latency\n(ms, log scale)", fontsize=8)
    return missing


def _shown(groups: list[tuple[str, pd.DataFrame]]) -> list[tuple[str, pd.DataFrame]]:
    """Return at most MAX_PANELS case shapes, in their order: those with the most ok slots, then the largest."""
    def rank(group: tuple[str, pd.DataFrame]) -> tuple[int, int]:
        rows = group[1]
        first = rows.iloc[0]
        return len(_ok(rows)), int(first["batch"] * first["height"] * first["width"] * first["heads"] * first["head_dim"])

    kept = {id(group) for group in sorted(groups, key=rank, reverse=True)[:MAX_PANELS]}
    return [group for group in groups if id(group) in kept]


def runtimes_figure(frame: pd.DataFrame) -> Figure | None:
    """Return each variant's median latency under each runtime, a panel per case shape (None with one runtime)."""
    runtimes = runtimes_present(frame)
    if len(runtimes) < 2:
        return None
    groups = shape_groups(frame)
    shown = _shown(groups)
    colors = runtime_colors(runtimes)
    variants = max(rows["variant"].nunique() for _, rows in shown)
    ticks = 0.2 + CHAR_INCHES * max(len(v) for _, rows in shown for v in rows["variant"].unique())
    fig = new_figure(len(shown), 1)
    fig.set_size_inches(max(fig.get_size_inches()[0], 0.9 + variants * len(runtimes) * BAR_INCHES / 0.8),
                        len(shown) * (PANEL_SIZE[1] + ticks))
    axes = fig.subplots(len(shown), 1, squeeze=False).ravel()
    missing = 0
    for ax, (title, rows) in zip(axes, shown):
        missing += _panel(ax, rows, runtimes, colors)
        ax.set_title(title, fontsize=9)
    handles = [Patch(color=colors[r], label=r) for r in runtimes]
    handles.append(Line2D([], [], color="grey", marker="$×$", linestyle="none", label="did not run there"))
    notes = [("The number above a bar: its speed-up over the same variant run eagerly (eager ms / ms). Export time "
              "(export_ms) is not in the medians.")]
    if missing:
        notes.append(f"{missing} variant × runtime slot(s) drew a grey × instead of a bar: not ok (listed above) "
                     "or not swept under that runtime.")
    if len(groups) > len(shown):
        notes.append(f"{len(groups) - len(shown)} more case shape(s) are not shown (shown: those with the most ok "
                     "runs, then the largest).")
    rows = pd.concat([rows for _, rows in shown])
    what = "Which formulation runs where, and how fast: median latency per runtime (lower is better)"
    return finish(fig, rows, what, handles, notes)
