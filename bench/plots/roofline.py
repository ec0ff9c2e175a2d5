"""The roofline figure: achieved GFLOP/s against arithmetic intensity, under the calibrated roofs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ROOFLINE_COLUMNS = ("gflop_per_s", "arithmetic_intensity", "peak_gflop_per_s", "peak_gb_per_s")


def roofline_points(results: pd.DataFrame) -> pd.DataFrame:
    """Return the ok rows that carry roofline columns, one per (variant, compiled, case)."""
    ok = results[(results["status"] == "ok")].dropna(subset=list(ROOFLINE_COLUMNS))
    return ok.assign(label=ok["variant"] + np.where(ok["compiled"].fillna(False), " (compiled)", ""))


def _draw_roof(ax: Axes, peak_gflop_per_s: float, peak_gb_per_s: float, intensities: np.ndarray) -> None:
    ridge = peak_gflop_per_s / peak_gb_per_s
    xs = np.geomspace(min(intensities.min(), ridge) / 4, max(intensities.max(), ridge) * 4, 200)
    ax.plot(xs, np.minimum(peak_gflop_per_s, xs * peak_gb_per_s), color="black", linewidth=1.5,
            label=f"roof: {peak_gflop_per_s:.0f} GFLOP/s, {peak_gb_per_s:.0f} GB/s")
    ax.axvline(ridge, color="grey", linestyle=":", linewidth=1)


def roofline_figure(results: pd.DataFrame, device: str | None = None, dtype: str | None = None) -> Figure:
    """Return the roofline figure of one device and dtype (the first present when not given)."""
    points = roofline_points(results)
    if points.empty:
        raise ValueError("no ok rows with roofline columns to plot")
    device = device or points["device"].iloc[0]
    dtype = dtype or points["dtype"].iloc[0]
    points = points[(points["device"] == device) & (points["dtype"] == dtype)]
    if points.empty:
        raise ValueError(f"no ok rows with roofline columns for {device} {dtype}")
    fig = Figure(figsize=(7, 4.5), layout="tight")
    FigureCanvasAgg(fig)  # object API: no pyplot state, no display
    ax = fig.subplots()
    # Peaks are measured per run; the roof drawn is their median over the rows shown.
    _draw_roof(ax, points["peak_gflop_per_s"].median(), points["peak_gb_per_s"].median(), points["arithmetic_intensity"].to_numpy())
    for label, group in points.groupby("label", sort=True):
        ax.scatter(group["arithmetic_intensity"], group["gflop_per_s"], label=label, s=28, alpha=0.8)
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (useful FLOP / compulsory byte)",
           ylabel="achieved GFLOP/s (useful FLOPs)", title=f"Roofline: {device}, {dtype}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def roofline_figure_or_none(results: pd.DataFrame) -> Figure | None:
    """Return the roofline figure of the first device and dtype, or None without roofline columns."""
    return None if roofline_points(results).empty else roofline_figure(results)


def save_roofline(results: pd.DataFrame, out_dir: str | Path, device: str | None = None, dtype: str | None = None) -> Path:
    """Write roofline.png into out_dir and return its path."""
    path = Path(out_dir) / "roofline.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    roofline_figure(results, device, dtype).savefig(path, dpi=120)
    return path
