"""The roofline figure: what each variant achieves against the calibrated roofs of its device, in the variants' colours.

Every variant computes the same useful FLOPs from the same compulsory bytes for a case, so at
one kernel size all points share one arithmetic intensity: a classic roofline would be a
vertical strip. So:
  - kernel sizes swept: the roofline proper, achieved GFLOP/s against intensity (which grows
    with k*k), a line per variant and case through its kernel sizes;
  - one kernel size: the fraction of the roof each variant reaches at that intensity, a row
    per variant, a point per case.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.analysis.labels import variant_order
from bench.plots.layout import finish, grid, variant_handles, whole_decades
from bench.plots.style import variant_styles

ROOFLINE_COLUMNS = ("gflop_per_s", "arithmetic_intensity", "peak_gflop_per_s", "peak_gb_per_s")


def roofline_points(results: pd.DataFrame) -> pd.DataFrame:
    """Return the ok rows that carry roofline columns, labelled by variant (and `(runtime)` unless eager)."""
    ok = results[(results["status"] == "ok")].dropna(subset=list(ROOFLINE_COLUMNS))
    runtime = ok["runtime"].fillna("eager")
    return ok.assign(label=ok["variant"] + np.where(runtime == "eager", "", " (" + runtime + ")"))


def _roof(ax: Axes, rows: pd.DataFrame) -> None:
    peak, bandwidth = rows["peak_gflop_per_s"].median(), rows["peak_gb_per_s"].median()  # measured per run
    ridge = peak / bandwidth
    intensities = rows["arithmetic_intensity"].to_numpy(dtype=float)
    xs = np.geomspace(min(intensities.min(), ridge) / 2, max(intensities.max(), ridge) * 2, 200)
    ax.plot(xs, np.minimum(peak, xs * bandwidth), color="black", linewidth=1.5, gid="roof")
    ax.axvline(ridge, color="grey", linestyle=":", linewidth=1)
    ax.text(0.02, 0.97, f"roof: {peak:.0f} GFLOP/s, {bandwidth:.0f} GB/s", transform=ax.transAxes, fontsize=7,
            va="top", color="#444444")


def _roofline_panel(ax: Axes, rows: pd.DataFrame, styles: dict) -> None:
    _roof(ax, rows)
    for (variant, label, _, _), case in rows.groupby(["variant", "label", "pixels", "batch"], sort=True):
        case = case.sort_values("arithmetic_intensity")
        style = styles[variant]
        ax.plot(case["arithmetic_intensity"], case["gflop_per_s"], color=style.color, marker=style.marker, markersize=5,
                linewidth=0.8, alpha=0.85, markerfacecolor="none" if label.endswith(")") else style.color, gid=label)
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (useful FLOP / compulsory byte)")
    if ax.get_subplotspec().is_first_col():
        ax.set_ylabel("achieved GFLOP/s (useful FLOPs, log)")


def _fraction_panel(ax: Axes, rows: pd.DataFrame, styles: dict, labels: list[str]) -> None:
    for i, label in enumerate(labels):
        mine = rows[rows["label"] == label]
        if mine.empty:
            continue
        style = styles[mine["variant"].iloc[0]]
        roof = np.minimum(mine["peak_gflop_per_s"], mine["arithmetic_intensity"] * mine["peak_gb_per_s"])
        jitter = np.linspace(-0.15, 0.15, len(mine)) if len(mine) > 1 else np.zeros(1)
        ax.scatter(mine["gflop_per_s"] / roof, i + jitter, marker=style.marker, s=30, edgecolors=style.color,
                   c="none" if label.endswith(")") else style.color, gid=label)
    ax.axvline(1, color="black", linewidth=1.5, gid="roof")
    ax.set_yticks(range(len(labels)), labels, fontsize=7.5)
    ax.tick_params(axis="y", labelleft=ax.get_subplotspec().is_first_col())  # one row of panels shares the labels
    ax.set_ylim(len(labels) - 0.4, -0.6)
    ax.set_xscale("log")
    whole_decades(ax)
    ax.set_xlabel("achieved / roof at the case's intensity (log; 1 = the roof)")


def roofline_figure(frame: pd.DataFrame) -> Figure:
    """Return the roofline figure: a panel per device and dtype (and result set), in the variants' colours."""
    points = roofline_points(frame)
    if points.empty:
        raise ValueError("no ok rows with roofline columns to plot")
    styles = variant_styles(frame["variant"])
    swept = points["kernel_size"].nunique() > 1
    fig, panels = grid(points, ["dtype"])  # the device (and machine) is part of the facet: one column each
    labels = sorted(points["label"].unique(), key=lambda label: (variant_order(points["variant"]).index(label.split()[0]), label))
    if not swept:
        width, height = fig.get_size_inches()
        fig.set_size_inches(width, max(height, len({ax.get_subplotspec().rowspan.start for ax in fig.axes}) * (0.8 + 0.22 * len(labels))))
    for ax, rows in panels:
        (_roofline_panel(ax, rows, styles) if swept else _fraction_panel(ax, rows, styles, labels))
    handles = variant_handles(points)
    if (points["runtime"].fillna("eager") != "eager").any():
        handles.append(Line2D([], [], color="grey", marker="o", markerfacecolor="none", linestyle="none", label="hollow: not eager"))
    if swept:
        what = "Roofline: achieved GFLOP/s against arithmetic intensity, a line per variant and case through its kernel sizes"
        notes = ["Intensity grows with the kernel size (k*k useful FLOPs per query from the same bytes); dotted: the ridge point."]
    else:
        intensity = points["arithmetic_intensity"].median()
        bound = points["bound"].mode().iloc[0] if "bound" in points and points["bound"].notna().any() else ""
        what = (f"Roofline at one kernel size ({int(points['kernel_size'].iloc[0])}): the fraction of the roof each variant "
                f"reaches\nevery case has an arithmetic intensity of about {intensity:.3g} FLOP/byte"
                + (f" ({bound}-bound)" if bound else ""))
        notes = ["One kernel size: every variant of a case shares one intensity, so the classic roofline is a vertical strip; "
                 "sweep --kernel-sizes 3,7,11 for it."]
    return finish(fig, frame[frame["device"].isin(points["device"])], what, handles, notes)


def roofline_figure_or_none(results: pd.DataFrame) -> Figure | None:
    """Return the roofline figure, or None without roofline columns."""
    return None if roofline_points(results).empty else roofline_figure(results)
