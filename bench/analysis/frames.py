"""Results ready for figures and reports: several CSVs -> one frame with facets, panels and footnotes; pure pandas."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bench.analysis.labels import axis_text, case_text, resolution_label, worth_naming
from bench.results import ResultsError, load
from bench.results.machines import machine_of
from bench.results.selection import latest_per_case

# Case axes besides variant/device/dtype/pass/resolution/batch that a sweep may vary.
EXTRA_AXES = ("heads", "head_dim", "kernel_size", "dilation", "runtime")
PANEL_BASE = ("facet", "device", "dtype", "pass")


class NothingToPlot(ResultsError):
    """Results that hold no measured (ok) row; the message is one line."""


def load_results(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Return the rows of every CSV (latest row per case), with `source`, `facet` and `pixels` columns."""
    if not paths:
        raise ResultsError("no results CSV given")
    unique = list(dict.fromkeys(Path(p) for p in paths))
    frames = []
    for index, path in enumerate(unique):
        frame = load(path)
        if frame.empty:
            raise NothingToPlot(f"nothing to plot: {path} has a header but no rows")
        frames.append(frame.assign(source=index, source_path=str(path)))
    combined = pd.concat(frames, ignore_index=True)
    require_ok(combined)
    combined = latest_per_case(combined, within=("source",))
    combined["facet"] = facet_labels(combined)
    combined["pixels"] = combined["height"] * combined["width"]
    return combined


def require_ok(frame: pd.DataFrame) -> None:
    """Raise NothingToPlot, naming the statuses and a reason, when no row has status ok."""
    if (frame["status"] == "ok").any():
        return
    counts = ", ".join(f"{n} {status}" for status, n in frame["status"].value_counts().items())
    first = frame.iloc[0]
    paths = ", ".join(dict.fromkeys(frame["source_path"]))
    raise NothingToPlot(f"nothing to plot: {paths} has no ok rows ({counts}; e.g. {first['variant']}: {first['reason']})")


def run_label(frame: pd.DataFrame) -> str:
    """Return 'run <id>' for one run, or '<n> runs <first>…<last>' for several."""
    runs = sorted(frame["run_id"].dropna().unique())
    if len(runs) <= 1:
        return f"run {runs[0]}" if runs else "run ?"
    return f"{len(runs)} runs {runs[0]}…{runs[-1]}"


def machine_label(frame: pd.DataFrame) -> str:
    """Return the device model(s) and host(s) of the rows, e.g. 'AMD EPYC (2 cores) on vm'."""
    names = " / ".join(dict.fromkeys(frame["device_name"].fillna(frame["device"])))
    hosts = ", ".join(dict.fromkeys(frame["host"].dropna())) or "unknown host"
    return f"{names} on {hosts}"


def facet_labels(frame: pd.DataFrame) -> pd.Series:
    """Return one facet label per row: its device model and host, plus the run when several CSVs are compared.

    A facet is one (source, machine, device): a file merged from several machines (a cluster
    run) shows one column of panels per machine, never one panel mixing their rows.
    """
    several = frame["source"].nunique() > 1
    labels = pd.Series("", index=frame.index, dtype="string")
    for _, group in frame.groupby([frame["source"], machine_of(frame), frame["device"]], sort=False):
        label = machine_label(group)
        if several:
            label = f"{label}\n{run_label(group)}"
        labels[group.index] = label
    # The same machine and run given twice under two file names: tell them apart by file.
    clash = frame.assign(label=labels).groupby("label")["source"].transform("nunique") > 1
    names = frame["source_path"].map(lambda path: Path(path).name).astype("string")
    labels[clash] = labels[clash] + " [" + names[clash] + "]"
    return labels


def panel_extras(frame: pd.DataFrame) -> list[str]:
    """Return the extra axes that vary at a fixed resolution and batch: each value needs its own panel."""
    group = [*PANEL_BASE, "variant", "height", "width", "batch"]
    return [col for col in EXTRA_AXES if frame.groupby(group, dropna=False)[col].nunique(dropna=False).max() > 1]


def tied_extras(frame: pd.DataFrame) -> list[str]:
    """Return the extra axes that vary only with the resolution (e.g. heads in the paper preset's stages)."""
    free = panel_extras(frame)
    return [col for col in EXTRA_AXES if col not in free and frame[col].nunique(dropna=False) > 1]


def panel_keys(frame: pd.DataFrame) -> list[str]:
    """Return the columns whose values make one panel row (facets are the columns)."""
    return ["dtype", "pass", *panel_extras(frame)]  # the device is part of the facet


def panel_title(frame: pd.DataFrame) -> str:
    """Return what the rows of one panel share, e.g. 'float32 · forward · heads 2 · head dim 32 · kernel 7'."""
    first = frame.iloc[0]
    parts = [str(first["dtype"]), str(first["pass"])]
    tied = tied_extras(frame)
    for col in EXTRA_AXES:
        if col not in tied and frame[col].nunique(dropna=False) == 1 and worth_naming(col, first[col]):
            parts.append(axis_text(col, first[col]))
    return " · ".join(parts)


def resolution_ticks(frame: pd.DataFrame) -> dict[int, str]:
    """Return pixel count -> tick label ('56×56', plus any axis tied to the resolution)."""
    tied = tied_extras(frame)
    ticks: dict[int, str] = {}
    for _, row in frame.drop_duplicates(["height", "width"]).sort_values("pixels").iterrows():
        label = resolution_label(row["height"], row["width"])
        same = frame[(frame["height"] == row["height"]) & (frame["width"] == row["width"])]
        for col in tied:
            values = ",".join(str(v) for v in sorted(same[col].dropna().unique()))
            label += f"\n{axis_text(col, values)}"
        ticks[int(row["pixels"])] = label
    return ticks


def not_ok_lines(frame: pd.DataFrame, limit: int = 8) -> list[str]:
    """Return one footnote line per (machine, variant, status, reason) of the rows that were not measured."""
    bad = frame[frame["status"] != "ok"].sort_values(["height", "width", "batch"])
    where = bad["facet"].str.split("\n").str[0] if frame["facet"].nunique() > 1 else pd.Series("", index=bad.index)
    lines = []
    for (place, variant, status, reason), group in bad.groupby([where, "variant", "status", bad["reason"].fillna("")]):
        cases = list(dict.fromkeys(case_text(row) for _, row in group.iterrows()))
        shown = ", ".join(cases[:3]) + (f" and {len(cases) - 3} more" if len(cases) > 3 else "")
        reason = reason if len(reason) <= 90 else reason[:87] + "..."
        lines.append(f"{place + ': ' if place else ''}{variant}: {status} ({shown}): {reason}")
    if len(lines) > limit:
        lines = lines[: limit - 1] + [f"... and {len(lines) - limit + 1} more groups (see the report)"]
    return lines


# The formulations the paper and this project start from: always in the default view of a figure.
SEED_VARIANTS = ("im2col", "slide", "natten", "window")


def headline_variants(frame: pd.DataFrame) -> list[str]:
    """Return the variants of a figure's default view: the seed formulations and the fastest of each family.

    The fastest of a family: among its variants that ran (ok) the most cases, the one with the
    lowest geometric mean of median_ms over them; one number per variant, so the view does
    not change from panel to panel.
    """
    ok = frame[frame["status"] == "ok"]
    chosen = [v for v in SEED_VARIANTS if v in set(frame["variant"])]
    for _, family in ok.groupby("family"):
        counts = family.groupby("variant").size()
        full = family[family["variant"].isin(counts[counts == counts.max()].index)]
        scores = full.assign(log_ms=np.log(full["median_ms"].astype(float))).groupby("variant")["log_ms"].mean()
        best = scores.idxmin()
        if best not in chosen:
            chosen.append(best)
    return chosen


def plots_folder(frame: pd.DataFrame) -> Path:
    """Return where the figures of frame go: plots/<output_folder> ($BENCH_PLOTS_DIR instead of plots/ when set)."""
    return Path(os.environ.get("BENCH_PLOTS_DIR") or "plots") / output_folder(frame)


def output_folder(frame: pd.DataFrame) -> str:
    """Return the plots/ sub-folder name: the run id, or a combined name for several runs.

    A run id comes from a file: only letters, digits and `._+-` are kept, never a leading dot,
    so that no run id names a folder outside plots/.
    """
    runs = sorted({re.sub(r"[^A-Za-z0-9_.+-]", "_", str(run)).lstrip(".") or "_" for run in frame["run_id"].dropna()})
    runs = runs or ["unknown-run"]
    if len(runs) <= 3:
        return "+".join(runs)
    digest = hashlib.sha1("+".join(runs).encode()).hexdigest()[:6]
    return f"{runs[0]}+{len(runs) - 1}-more-{digest}"
