"""Figures of one results CSV, or several side by side, into plots/<run_id>/ as PNG and SVG.

Plotting reads only the tidy CSV (through bench.results.load), so results from other
machines plot the same way. Figures are built on matplotlib's object API with the Agg
canvas: no pyplot state, no display needed, and a notebook can show the returned Figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.analysis.frames import load_results, panel_keys, plots_folder, resolution_ticks
from bench.analysis.labels import resolution_label, variant_order
from bench.analysis.summary import times, with_speedup
from bench.plots.layout import HOLLOW, finish, grid, log_axis, mark_not_measured, variant_handles
from bench.plots.roofline import roofline_figure_or_none
from bench.plots.style import linestyles, variant_styles
from bench.results.schema import TOLERANCE
from bench.results.selection import NOISE_THRESHOLD, REFERENCE_VARIANT, noisy_rows

FORMATS = ("png", "svg")


def _x_axis(ax: Axes, rows: pd.DataFrame, x: str) -> None:
    if x == "pixels":
        log_axis(ax, "x", resolution_ticks(rows))
        ax.set_xlabel("resolution (H×W, log scale by pixel count)")
    else:
        log_axis(ax, "x", {b: str(b) for b in sorted(rows[x].unique())})
        ax.set_xlabel(f"{x} (log scale)")


def _line_panel(ax: Axes, rows: pd.DataFrame, x: str, y: str, line_by: str, styles: dict, dashes: dict) -> str:
    """Draw one panel's lines and hollow markers; return a note on ok rows with nothing to draw ('' if none)."""
    ok = rows[(rows["status"] == "ok") & (rows[y] > 0)]
    for (variant, value), group in ok.groupby(["variant", line_by]):
        group = group.sort_values(x)
        style = styles[variant]
        spread = (group["iqr_ms"] / 2).clip(upper=group[y] * 0.9) if y == "median_ms" else None
        line = ax.errorbar(group[x], group[y], yerr=spread, color=style.color, marker=style.marker,
                           linestyle=dashes[value], markersize=5, elinewidth=0.8, capsize=0)[0]
        line.set_label(variant)
        line.set_gid(f"{line_by}={value}")
    noisy = ok[noisy_rows(ok)]
    if len(noisy):  # a grey ring: the value is a median of widely spread blocks
        ax.scatter(noisy[x], noisy[y], s=140, facecolors="none", edgecolors="grey", linewidths=0.9, gid="noisy", zorder=3)
    mark_not_measured(ax, rows[rows["status"] != "ok"], x, styles)
    _x_axis(ax, rows, x)
    ax.set_yscale("log")
    if (rows["status"] != "ok").any() and not ok.empty:
        low, high = ax.get_ylim()  # room at the bottom for the hollow markers, clear of the data
        ax.set_ylim(low / (high / low) ** 0.3, high)
    missing = rows[(rows["status"] == "ok") & ~(rows[y] > 0)]
    if missing.empty:
        return ""
    return (f"{len(missing)} ok case(s) have no positive {y} (not measurable there), e.g. "
            f"{missing['variant'].iloc[0]} {resolution_label(missing['height'].iloc[0], missing['width'].iloc[0])}")


def line_figure(frame: pd.DataFrame, what: str, x: str, y: str, ylabel: str, line_by: str) -> Figure:
    """Return a figure of `y` against `x` (both log), a line per variant and `line_by` value, per panel."""
    styles = variant_styles(frame["variant"])
    dashes = linestyles(frame[line_by])
    fig, panels = grid(frame, panel_keys(frame))
    notes = {_line_panel(ax, rows, x, y, line_by, styles, dashes) for ax, rows in panels} - {""}
    for ax, _ in panels:
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(ylabel)
    for ax in fig.axes:  # a row of panels where nothing was measured: a valid log range for its hollow markers
        if ax.get_yscale() == "log" and ax.get_ylim()[0] <= 0:
            ax.set_ylim(1, 10)
    label_of = (lambda v: f"batch {v}") if line_by == "batch" else (lambda v: _pixels_label(frame, v))
    line_handles = [Line2D([], [], color="grey", linestyle=style, label=label_of(v)) for v, style in dashes.items()
                    if len(dashes) > 1]  # one batch (or resolution) needs no line-style key
    if y == "median_ms":
        line_handles.append(Line2D([], [], color="grey", marker="|", linestyle="none", label="bar: interquartile range"))
    if noisy_rows(frame[frame["status"] == "ok"]).any():
        line_handles.append(Line2D([], [], color="grey", marker="o", markersize=9, markerfacecolor="none", linestyle="none",
                                   label=f"ringed: noisy (IQR > {NOISE_THRESHOLD:.0%} of median)"))
    return finish(fig, frame, what, variant_handles(frame) + line_handles, sorted(notes))


def _pixels_label(frame: pd.DataFrame, pixels: int) -> str:
    row = frame[frame["pixels"] == pixels].iloc[0]
    return resolution_label(row["height"], row["width"])


def latency_figure(frame: pd.DataFrame) -> Figure:
    """Return median latency vs resolution (log-log), a line per variant and batch size."""
    return line_figure(frame, "Latency vs resolution (median; lower is better)", "pixels", "median_ms",
                       "median latency (ms, log scale)", "batch")


def throughput_figure(frame: pd.DataFrame) -> Figure:
    """Return throughput (images/s) vs batch size, a line per variant and resolution (vs resolution for one batch)."""
    if frame["batch"].nunique() == 1:  # a single point per line says nothing: show the resolution axis instead
        what = (f"Throughput vs resolution at batch {frame['batch'].iloc[0]} (higher is better)\n"
                "one batch size in this run: sweep --batch 1,2,4,8 for throughput vs batch")
        return line_figure(frame, what, "pixels", "throughput_per_s", "throughput (images/s, log scale)", "batch")
    return line_figure(frame, "Throughput vs batch size (higher is better)", "batch", "throughput_per_s",
                       "throughput (images/s, log scale)", "pixels")


def memory_figure(frame: pd.DataFrame) -> Figure:
    """Return peak extra memory of one call vs resolution (log-log), a line per variant and batch size."""
    return line_figure(frame, "Peak memory of one call vs resolution (lower is better)", "pixels", "peak_mem_mb",
                       "peak extra memory (MiB, log scale)", "batch")


def _speedup_panel(ax: Axes, rows: pd.DataFrame, styles: dict, reference: str) -> None:
    cases = rows[["pixels", "height", "width", "batch"]].drop_duplicates().sort_values(["pixels", "batch"])
    others = [v for v in variant_order(rows["variant"]) if v != reference]
    width = 0.8 / max(len(others), 1)
    for i, case in enumerate(cases.itertuples(index=False)):
        here = rows[(rows["pixels"] == case.pixels) & (rows["batch"] == case.batch)].set_index("variant")
        if reference not in here.index or here.loc[reference, "status"] != "ok":
            ax.text(i, 1, f"no {reference}\nreference", ha="center", va="bottom", fontsize=7, color="grey")
            continue
        for j, variant in enumerate(others):
            if variant not in here.index:
                continue
            x, style, row = i - 0.4 + width * (j + 0.5), styles[variant], here.loc[variant]
            if row["status"] != "ok":
                ax.plot([x], [1], marker=style.marker, color=style.color, **HOLLOW, gid="not-measured")
                continue
            speedup = row["speedup"]
            ax.bar(x, speedup - 1, bottom=1, width=width * 0.9, color=style.color, alpha=0.85, gid=variant)
            ax.plot([x], [speedup], marker=style.marker, color=style.color, markersize=4, linestyle="none",
                    markeredgecolor="white", markeredgewidth=0.5)
            ax.annotate(times(speedup), (x, speedup), xytext=(0, 3 if speedup >= 1 else -3),
                        textcoords="offset points", ha="center", va="bottom" if speedup >= 1 else "top",
                        fontsize=6.5, rotation=90)
    ax.axhline(1, color="black", linewidth=1.2, gid="reference")
    ax.text(1.01, 1, f"1× = {reference}", transform=ax.get_yaxis_transform(), ha="left", va="center", fontsize=7.5)
    ax.set_xticks(range(len(cases)), [f"{resolution_label(c.height, c.width)}\nbatch {c.batch}" for c in cases.itertuples()])
    ax.set_xlim(-0.6, len(cases) - 0.4)
    ax.set_yscale("log")
    ax.margins(y=0.25)
    if ax.get_subplotspec().is_first_col():
        ax.set_ylabel(f"speed-up vs {reference} (×, log scale)\nabove 1×: faster, below: slower")


def speedup_figure(frame: pd.DataFrame, reference: str = REFERENCE_VARIANT) -> Figure | None:
    """Return bars of each variant's speed-up over the reference per case (None without reference rows)."""
    if not ((frame["variant"] == reference) & (frame["status"] == "ok")).any():
        return None
    data = with_speedup(frame, reference)
    styles = variant_styles(data["variant"])
    fig, panels = grid(data, panel_keys(data))
    for ax, rows in panels:
        _speedup_panel(ax, rows, styles, reference)
    handles = [h for h in variant_handles(frame) if h.get_label().split()[0] != reference]
    what = f"Speed-up relative to {reference} (median {reference} ms / median ms; higher is better)"
    return finish(fig, frame, what, handles, [])


def _tolerance_marks(ax: Axes, rows: pd.DataFrame, x: pd.Series) -> None:
    """Draw each measured row's accepted error as a short dash at its x; the dtype's line for files without it."""
    fixed = TOLERANCE.get(str(rows["dtype"].iloc[0]))
    recorded = rows.get("tolerance", pd.Series(np.nan, index=rows.index))
    if recorded.notna().any():  # bench/measure/correctness.py: measured per case since schema 3
        ax.scatter(x, recorded.fillna(fixed if fixed else np.nan), marker="_", s=120, c="#b22222",
                   linewidths=1.2, gid="tolerance")
    elif fixed:
        ax.axhline(fixed, color="#b22222", linestyle="--", linewidth=1, gid="tolerance")
        ax.text(0.99, fixed, f"tolerance {fixed:g}", color="#b22222", fontsize=7, ha="right",
                va="bottom", transform=ax.get_yaxis_transform())


def _accuracy_panel(ax: Axes, rows: pd.DataFrame, styles: dict) -> None:
    order = variant_order(rows["variant"])
    measured_all, positions = [], []
    for i, variant in enumerate(order):
        group = rows[rows["variant"] == variant]
        style, measured = styles[variant], group[group["max_abs_err"].notna()]
        jitter = np.linspace(-0.15, 0.15, len(measured)) if len(measured) > 1 else np.zeros(len(measured))
        errors = measured["max_abs_err"].clip(lower=1e-16)  # an exact 0 sits at the floor of the log axis
        fill = [style.color if s == "ok" else "none" for s in measured["status"]]
        ax.scatter(i + jitter, errors, marker=style.marker, c=fill, edgecolors=style.color, s=30, gid=variant)
        measured_all.append(measured)
        positions.append(pd.Series(i + jitter, index=measured.index))
        unmeasured = group[group["max_abs_err"].isna()]
        if not unmeasured.empty:
            ax.plot([i], [0.04], marker=style.marker, color=style.color, **HOLLOW,
                    transform=ax.get_xaxis_transform(), gid="not-measured")
    if measured_all and sum(map(len, measured_all)):
        _tolerance_marks(ax, pd.concat(measured_all), pd.concat(positions))
    families = rows.drop_duplicates("variant").set_index("variant")["family"]
    ax.set_xticks(range(len(order)), [f"{v}\n({families[v]})" for v in order], rotation=30, ha="right", fontsize=7.5)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_yscale("log")


def accuracy_figure(frame: pd.DataFrame) -> Figure:
    """Return max |output - float64 oracle| per variant (a point per case, a dash at its tolerance), a panel per dtype."""
    styles = variant_styles(frame["variant"])
    fig, panels = grid(frame, ["dtype"])
    for ax, rows in panels:
        _accuracy_panel(ax, rows, styles)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("max |output - float64 oracle| (log scale)")
        ax.set_title(ax.get_title().split("·")[0].strip(), fontsize=9)
    notes = ["Each point is one case; outputs are compared only with the oracle of the variant's own family."]
    handles = variant_handles(frame)
    if frame.get("tolerance", pd.Series(dtype=float)).notna().any():
        notes.append("A case's tolerance is relative to a plain formulation in its dtype (README: Correctness); "
                     "a hollow point below its dash failed the mean-error bound (see its reason).")
        handles.append(Line2D([], [], color="#b22222", marker="_", markersize=10, linestyle="none", label="that case's tolerance"))
    what = "Accuracy against the float64 oracle of each variant's family (lower is better)"
    return finish(fig, frame, what, handles, notes)


FIGURES: dict[str, Callable[[pd.DataFrame], Figure | None]] = {
    "latency": latency_figure,
    "speedup": speedup_figure,
    "throughput": throughput_figure,
    "memory": memory_figure,
    "accuracy": accuracy_figure,
}
# Drawn only when the CSV has what they need (e.g. the roofline columns of bench/roofline.py).
OPTIONAL_FIGURES: dict[str, Callable[[pd.DataFrame], Figure | None]] = {"roofline": roofline_figure_or_none}


def make_figures(frame: pd.DataFrame, out_dir: Path, formats: tuple[str, ...] | None = None) -> dict[str, list[Path]]:
    """Write every figure of `frame` into out_dir (as png and svg by default); return figure name -> files written."""
    formats = formats or FORMATS
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for name, build in {**FIGURES, **OPTIONAL_FIGURES}.items():
        fig = build(frame)
        if fig is None:
            continue
        written[name] = []
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            # No date in the SVG, so that re-plotting the same CSV gives the same file.
            fig.savefig(path, dpi=120, metadata={"Date": None} if fmt == "svg" else None)
            written[name].append(path)
    return written


def plot_csvs(paths: list[Path], out_dir: Path | None = None, formats: tuple[str, ...] | None = None) -> dict[str, list[Path]]:
    """Load the CSVs and write their figures (default folder: plots/<run_id>); return what was written."""
    frame = load_results(paths)
    return make_figures(frame, out_dir or plots_folder(frame), formats)
