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

from bench.analysis.frames import headline_variants, load_results, panel_keys, plots_folder, resolution_ticks
from bench.analysis.labels import resolution_label, variant_order
from bench.analysis.summary import times, with_speedup
from bench.plots.layout import finish, grid, log_axis, variant_handles, whole_decades
from bench.plots.machines import machines_figure
from bench.plots.roofline import roofline_figure_or_none
from bench.plots.runtimes import runtimes_figure
from bench.plots.style import linestyles, variant_styles
from bench.results.schema import TOLERANCE
from bench.results.selection import NOISE_THRESHOLD, REFERENCE_VARIANT, noisy_rows

FORMATS = ("png", "svg")
MAX_LINES = 12  # lines per panel of a line figure; beyond, a panel per batch size
LABEL_ALL_BARS = 4  # a speed-up figure labels every bar up to this many variants per case, else only the fastest


def _x_axis(ax: Axes, rows: pd.DataFrame, x: str) -> None:
    if x == "pixels":
        log_axis(ax, "x", resolution_ticks(rows))
        ax.set_xlabel("resolution (H×W, log scale by pixel count)")
    else:
        log_axis(ax, "x", {b: str(b) for b in sorted(rows[x].unique())})
        ax.set_xlabel(f"{x} (log scale)")


def _line_panel(ax: Axes, rows: pd.DataFrame, x: str, y: str, line_by: str, styles: dict, dashes: dict) -> str:
    """Draw one panel's lines; return a note on ok rows with nothing to draw ('' if none). Cases that did not
    run are not drawn (a point at some made-up value would read as a result): the footnote lists them."""
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
    _x_axis(ax, rows, x)
    ax.set_yscale("log")
    if ok.empty:
        ax.text(0.5, 0.5, "nothing ran here\n(see the footnote)", ha="center", va="center", transform=ax.transAxes, color="grey")
    missing = rows[(rows["status"] == "ok") & ~(rows[y] > 0)]
    if missing.empty:
        return ""
    return (f"{len(missing)} ok case(s) have no positive {y} (not measurable there), e.g. "
            f"{missing['variant'].iloc[0]} {resolution_label(missing['height'].iloc[0], missing['width'].iloc[0])}")


def line_figure(frame: pd.DataFrame, what: str, x: str, y: str, ylabel: str, line_by: str) -> Figure:
    """Return a figure of `y` against `x` (both log), a line per variant and `line_by` value, per panel."""
    styles = variant_styles(frame["variant"])
    split = line_by == "batch" and frame["variant"].nunique() * frame["batch"].nunique() > MAX_LINES
    dashes = {value: "-" for value in frame[line_by].unique()} if split else linestyles(frame[line_by])
    fig, panels = grid(frame, [*panel_keys(frame), "batch"] if split else panel_keys(frame))
    if split:  # too many lines for one panel: a panel per batch size
        for ax, rows in panels:
            ax.set_title(f"{ax.get_title()} · batch {rows['batch'].iloc[0]}", fontsize=9)
    notes = {_line_panel(ax, rows, x, y, line_by, styles, dashes) for ax, rows in panels} - {""}
    for ax, _ in panels:
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(ylabel)
    for ax in fig.axes:  # a row of panels where nothing was measured: a valid log range, no made-up ticks
        if ax.get_yscale() == "log" and not ax.has_data():
            ax.set_ylim(1, 10)
            ax.set_yticks([])
    label_of = (lambda v: f"batch {v}") if line_by == "batch" else (lambda v: _pixels_label(frame, v))
    line_handles = [Line2D([], [], color="grey", linestyle=style, label=label_of(v)) for v, style in dashes.items()
                    if len(set(dashes.values())) > 1]  # one batch (or resolution) needs no line-style key
    if y == "median_ms":
        line_handles.append(Line2D([], [], color="grey", marker="|", linestyle="none", label="bar: interquartile range"))
    if noisy_rows(frame[frame["status"] == "ok"]).any():
        line_handles.append(Line2D([], [], color="grey", marker="o", markersize=9, markerfacecolor="none", linestyle="none",
                                   label=f"ringed: noisy (IQR > {NOISE_THRESHOLD:.0%} of median)"))
    return finish(fig, frame, what, variant_handles(frame) + line_handles, sorted(notes))


def _pixels_label(frame: pd.DataFrame, pixels: int) -> str:
    row = frame[frame["pixels"] == pixels].iloc[0]
    return resolution_label(row["height"], row["width"])


def headline(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the rows of the default view: the seed formulations and the fastest variant of each family."""
    return frame[frame["variant"].isin(headline_variants(frame))]


def _full_set_differs(frame: pd.DataFrame) -> bool:
    return frame["variant"].nunique() > len(headline_variants(frame))


def latency_figure(frame: pd.DataFrame) -> Figure:
    """Return median latency vs resolution (log-log) of the default view, a line per variant and batch size."""
    return line_figure(headline(frame), "Latency vs resolution (median; lower is better): the seed formulations "
                       "and the fastest of each family", "pixels", "median_ms", "median latency (ms, log scale)", "batch")


def latency_all_figure(frame: pd.DataFrame) -> Figure | None:
    """Return the latency figure of every variant (None when the default view already shows them all)."""
    if not _full_set_differs(frame):
        return None
    return line_figure(frame, "Latency vs resolution (median; lower is better): every variant", "pixels", "median_ms",
                       "median latency (ms, log scale)", "batch")


def throughput_figure(frame: pd.DataFrame) -> Figure | None:
    """Return throughput (images/s) vs batch size, a line per variant and resolution (None for one batch size:
    throughput is then batch / latency, the latency figure upside down)."""
    if frame["batch"].nunique() == 1:
        return None
    return line_figure(headline(frame), "Throughput vs batch size (higher is better)", "batch", "throughput_per_s",
                       "throughput (images/s, log scale)", "pixels")


def memory_figure(frame: pd.DataFrame) -> Figure:
    """Return peak extra memory of one call vs resolution (log-log), a line per variant (default view) and batch size."""
    return line_figure(headline(frame), "Peak memory of one call vs resolution (lower is better)", "pixels", "peak_mem_mb",
                       "peak extra memory (MiB, log scale)", "batch")


def _speedup_panel(ax: Axes, rows: pd.DataFrame, styles: dict, reference: str) -> None:
    cases = rows[["pixels", "height", "width", "batch"]].drop_duplicates().sort_values(["pixels", "batch"])
    others = [v for v in variant_order(rows["variant"]) if v != reference]
    width = 0.8 / max(len(others), 1)
    label_all = len(others) <= LABEL_ALL_BARS  # more bars per case: narrower than a label, so only the fastest's
    for i, case in enumerate(cases.itertuples(index=False)):
        here = rows[(rows["pixels"] == case.pixels) & (rows["batch"] == case.batch)].set_index("variant")
        if reference not in here.index or here.loc[reference, "status"] != "ok":
            ax.text(i, 1, f"no {reference}\nreference", ha="center", va="bottom", fontsize=7, color="grey")
            continue
        ok_speedups = here.loc[[v for v in others if v in here.index and here.loc[v, "status"] == "ok"], "speedup"].dropna()
        fastest = ok_speedups.idxmax() if len(ok_speedups) else None
        for j, variant in enumerate(others):
            if variant not in here.index:
                continue
            x, style, row = i - 0.4 + width * (j + 0.5), styles[variant], here.loc[variant]
            if row["status"] != "ok":
                continue  # listed in the footnote
            speedup = row["speedup"]
            ax.bar(x, speedup - 1, bottom=1, width=width * 0.9, color=style.color, alpha=0.85, gid=variant)
            ax.plot([x], [speedup], marker=style.marker, color=style.color, markersize=4, linestyle="none",
                    markeredgecolor="white", markeredgewidth=0.5)
            if label_all or variant == fastest:
                ax.annotate(times(speedup), (x, speedup), xytext=(0, 3 if speedup >= 1 else -3),
                            textcoords="offset points", ha="center", va="bottom" if speedup >= 1 else "top",
                            fontsize=6.5, rotation=90)
    ax.axhline(1, color="black", linewidth=1.2, gid="reference")
    ax.text(1.01, 1, f"1× = {reference}", transform=ax.get_yaxis_transform(), ha="left", va="center", fontsize=7.5)
    crowded = len(cases) > 6  # side by side, two-line labels would collide: one line each, upright
    ticks = [f"{resolution_label(c.height, c.width)} b{c.batch}" if crowded else f"{resolution_label(c.height, c.width)}\nbatch {c.batch}"
             for c in cases.itertuples()]
    ax.set_xticks(range(len(cases)), ticks, rotation=90 if crowded else 0, fontsize=7.5 if crowded else None)
    ax.set_xlim(-0.6, len(cases) - 0.4)
    ax.set_yscale("log")
    ax.margins(y=0.25)
    if ax.get_subplotspec().is_first_col():
        ax.set_ylabel(f"speed-up vs {reference} (×, log scale)\nabove 1×: faster, below: slower")


def speedup_figure(frame: pd.DataFrame, reference: str = REFERENCE_VARIANT) -> Figure | None:
    """Return bars of the default view's speed-up over the reference per case (None without reference rows)."""
    return _speedup_figure(headline(frame), reference, "the seed formulations and the fastest of each family")


def speedup_all_figure(frame: pd.DataFrame, reference: str = REFERENCE_VARIANT) -> Figure | None:
    """Return the speed-up bars of every variant (None when the default view shows them all)."""
    return _speedup_figure(frame, reference, "every variant") if _full_set_differs(frame) else None


def _speedup_figure(frame: pd.DataFrame, reference: str, which: str) -> Figure | None:
    if not ((frame["variant"] == reference) & (frame["status"] == "ok")).any():
        return None
    data = with_speedup(frame, reference)
    styles = variant_styles(data["variant"])
    fig, panels = grid(data, panel_keys(data))
    for ax, rows in panels:
        _speedup_panel(ax, rows, styles, reference)
    handles = [h for h in variant_handles(frame) if h.get_label().split()[0] != reference]
    what = f"Speed-up relative to {reference} (median {reference} ms / median ms; higher is better): {which}"
    notes = [] if len(handles) <= LABEL_ALL_BARS else ["The number above a case's bars is its fastest variant's speed-up."]
    return finish(fig, frame, what, handles, notes)


def _tolerance_marks(ax: Axes, rows: pd.DataFrame, y: pd.Series) -> None:
    """Draw each measured row's accepted error as a short bar at its y; the dtype's line for files without it."""
    fixed = TOLERANCE.get(str(rows["dtype"].iloc[0]))
    recorded = rows.get("tolerance", pd.Series(np.nan, index=rows.index))
    if recorded.notna().any():  # bench/measure/correctness.py: measured per case since schema 3
        ax.scatter(recorded.fillna(fixed if fixed else np.nan), y, marker="|", s=120, c="#b22222",
                   linewidths=1.2, gid="tolerance")
    elif fixed:
        ax.axvline(fixed, color="#b22222", linestyle="--", linewidth=1, gid="tolerance")
        ax.text(fixed, 1.0, f" tolerance {fixed:g}", color="#b22222", fontsize=7, ha="left",
                va="bottom", transform=ax.get_xaxis_transform())


def _accuracy_panel(ax: Axes, rows: pd.DataFrame, styles: dict, order: list[str]) -> None:
    """One row per variant (labels never crowd, however many), errors along a log x axis."""
    measured_all, positions = [], []
    for i, variant in enumerate(order):
        group = rows[rows["variant"] == variant]
        style, measured = styles[variant], group[group["max_abs_err"].notna()]
        jitter = np.linspace(-0.15, 0.15, len(measured)) if len(measured) > 1 else np.zeros(len(measured))
        errors = measured["max_abs_err"].clip(lower=1e-16)  # an exact 0 sits at the floor of the log axis
        fill = [style.color if s == "ok" else "none" for s in measured["status"]]
        ax.scatter(errors, i + jitter, marker=style.marker, c=fill, edgecolors=style.color, s=30, gid=variant)
        measured_all.append(measured)
        positions.append(pd.Series(i + jitter, index=measured.index))
    if measured_all and sum(map(len, measured_all)):
        _tolerance_marks(ax, pd.concat(measured_all), pd.concat(positions))
    families = rows.drop_duplicates("variant").set_index("variant")["family"].to_dict()
    ax.set_yticks(range(len(order)), [f"{v} ({families[v]})" if v in families else v for v in order], fontsize=7.5)
    ax.set_ylim(len(order) - 0.4, -0.6)  # the first variant on top
    ax.set_xscale("log")
    whole_decades(ax)


def accuracy_figure(frame: pd.DataFrame) -> Figure:
    """Return max |output - float64 oracle| per variant (a point per case, a bar at its tolerance), a panel per dtype."""
    styles = variant_styles(frame["variant"])
    order = variant_order(frame["variant"])
    fig, panels = grid(frame, ["dtype"])
    width, height = fig.get_size_inches()
    rows_of_panels = len({ax.get_subplotspec().rowspan.start for ax in fig.axes})
    fig.set_size_inches(width, max(height, rows_of_panels * (0.8 + 0.22 * len(order))))
    for ax, rows in panels:
        _accuracy_panel(ax, rows, styles, order)
        ax.set_xlabel("max |output - float64 oracle| (log scale)")
        ax.set_title(ax.get_title().split("·")[0].strip(), fontsize=9)
    notes = ["Each point is one case; outputs are compared only with the oracle of the variant's own family."]
    handles = []
    if frame.get("tolerance", pd.Series(dtype=float)).notna().any():
        notes.append("A case's tolerance is relative to a plain formulation in its dtype (docs/measuring.md: Correctness); "
                     "a hollow point left of its bar failed the mean-error bound (see its reason).")
        handles.append(Line2D([], [], color="#b22222", marker="|", markersize=10, linestyle="none", label="that case's tolerance"))
    what = "Accuracy against the float64 oracle of each variant's family (lower is better)"
    return finish(fig, frame, what, handles, notes)


FIGURES: dict[str, Callable[[pd.DataFrame], Figure | None]] = {
    "latency": latency_figure,
    "speedup": speedup_figure,
    "memory": memory_figure,
    "accuracy": accuracy_figure,
}
# Drawn only when the CSV has what they need: more variants than the default view, several batch
# sizes, the roofline columns (bench/measure/roofline.py), rows of several machines (a merged cluster run),
# rows of several runtimes (eager, inductor, export, onnxruntime).
OPTIONAL_FIGURES: dict[str, Callable[[pd.DataFrame], Figure | None]] = {
    "latency-all": latency_all_figure,
    "speedup-all": speedup_all_figure,
    "throughput": throughput_figure,
    "roofline": roofline_figure_or_none,
    "machines": machines_figure,
    "runtimes": runtimes_figure,
}


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
