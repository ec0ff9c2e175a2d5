"""The paper's speed figure redrawn with this machine's times: the paper's Top-1 against the measured ms.

One panel per machine, device, runtime, dtype, resolution, batch and pass. x: the median ms over rounds
(bench.analysis.models.summary), on a log axis; y: the ImageNet-1K Top-1 the paper reports
(TOP1). One line per family, in order of size; each of the paper's arrows that was measured
is drawn from its baseline to its Slide model and labelled with the ratio here and the paper's.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pandas as pd
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.analysis.frames import machine_label, run_label
from bench.analysis.models import GROUP, PAPER_ARROWS, model_rows, summary, verdicts

# The Slide-Transformer paper's ImageNet-1K table (figs/exp_cls.png of its repository); PVT-M and -L from the
# PVT paper's Table 2; Slide-PVT-M (no row in the table) as its speed figure plots it.
TOP1 = {"swin-t": 81.3, "swin-s": 83.0, "swin-b": 83.5, "slide-swin-t": 82.3, "slide-swin-s": 83.7, "slide-swin-b": 84.2,
        "pvt-t": 75.1, "pvt-s": 79.8, "pvt-m": 81.2, "pvt-l": 81.7,
        "slide-pvt-t": 78.0, "slide-pvt-s": 81.7, "slide-pvt-m": 82.9}
SIZES = "tsmlb"
FOOTNOTE = ("Top-1: the paper's ImageNet-1K table (Slide-PVT-M as its speed figure plots it; PVT-M/L from the PVT paper). "
            "An Im2Col (or fast-) model is drawn where the paper's Im2Col curve puts it, at the Top-1 of the baseline of its "
            "size (Im2Col-Swin-B at Swin-B's 83.5); timm's at the config it equals. Arrows: the paper's six, labelled with "
            "the ratio measured here [its interval over rounds] and the paper's.")


def top1(config: str) -> float | None:
    """Return the Top-1 the paper gives or plots for a config (a twin's where it has none), or None."""
    return TOP1.get(re.sub(r"^(im2col|fast|timm)-", "", config))


def _family(config: str) -> tuple[str, str]:
    """Return a config's family (its name without the size) and its size letter."""
    head, _, size = config.rpartition("-")
    return head, size


def _panel(ax, table: pd.DataFrame, arrows: pd.DataFrame) -> None:
    table = table[table["ms"].notna() & table["config"].map(top1).notna()]
    for family, members in table.groupby(table["config"].map(lambda c: _family(c)[0]), sort=True):
        members = members.sort_values("config", key=lambda s: s.map(lambda c: SIZES.find(_family(c)[1])))
        ys = members["config"].map(top1)
        ax.plot(members["ms"], ys, marker="o", markersize=4, label=family, gid=f"family|{family}")
        for ms, y, config in zip(members["ms"], ys, members["config"]):
            ax.annotate(config, (ms, y), xytext=(3, -9), textcoords="offset points", fontsize=6)
    at = table.set_index("config")["ms"]
    pairs = {}  # one arrow per pair of models: the paper draws the Slide-PVT-S vs PVT-L pair on two devices
    for _, arrow in arrows.iterrows():
        claim = next(c for c in PAPER_ARROWS if c.name == arrow["claim"])
        pairs.setdefault((claim.slower, claim.faster), (arrow, []))[1].append(f"{claim.factor:g}x {claim.where.split(',')[0]}")
    stacked: dict[float, int] = {}
    for (slower, faster), (arrow, papers) in pairs.items():
        start, end = (at[slower], top1(slower)), (at[faster], top1(faster))
        ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.8},
                    gid=f"arrow|{slower}|{faster}")
        label = f"{arrow['speedup']:.2f}x [{arrow['low']:.2f}-{arrow['high']:.2f}] here; paper {', '.join(papers)}"
        # at the baseline's end, above its point, running towards the Slide model; stacked where baselines share a Top-1
        stacked[start[1]] = stacked.get(start[1], -1) + 1
        ax.annotate(label, start, xytext=(0, 5 + 9 * stacked[start[1]]), textcoords="offset points", fontsize=6, color="dimgrey",
                    ha="right" if start[0] > end[0] else "left", va="bottom")
    ax.set_xscale("log")
    ax.margins(y=0.12)  # room above the top model for its arrow labels
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    ax.tick_params(axis="x", which="both", labelsize=7)
    ax.set_xlabel("measured ms per image (median over rounds, log scale)", fontsize=8)
    ax.set_ylabel("ImageNet-1K Top-1 (%, the paper's)", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def draw(rows: pd.DataFrame, path: Path) -> Path:
    """Draw the figure of the model rows into path (a PNG); return path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    build(rows).savefig(path, dpi=130)
    return path


def build(rows: pd.DataFrame) -> Figure:
    """Return the figure of the model rows: a panel per machine, device, dtype, resolution, batch and pass."""
    rows = model_rows(rows)
    table, arrows = summary(rows), verdicts(rows, PAPER_ARROWS)
    groups = list(table.groupby(GROUP, sort=True))
    fig = Figure(figsize=(6.5 * max(1, len(groups)), 5.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(1, len(groups)), squeeze=False)[0]
    for ax, (key, members) in zip(axes, groups):
        group = dict(zip(GROUP, key))
        ax.set_title(f"{group['device']} {group['runtime']} {group['dtype']}, {group['height']}x{group['height']}, "
                     f"batch {group['batch']}, {group['pass']}", fontsize=9)
        mask = (arrows[GROUP] == pd.Series(key, index=GROUP)).all(axis=1) if len(arrows) else []
        _panel(ax, members, arrows[mask] if len(arrows) else arrows)
    fig.suptitle(f"The paper's speed figure on this machine\n{machine_label(rows)} · {run_label(rows)}", fontsize=10)
    # the paper's own panels, as a table under this machine's
    paper = "; ".join(f"{claim.name}: {claim.paper_ms[0]:g} vs {claim.paper_ms[1]:g} ms ({claim.where.split(',')[0]})"
                      for claim in PAPER_ARROWS)
    footnote = textwrap.wrap(FOOTNOTE, 60 * max(1, len(groups)) + 60) + textwrap.wrap(
        f"The paper's panels (its arrows' points, ms read off its figure): {paper}.", 60 * max(1, len(groups)) + 60)
    fig.text(0.01, 0.01, "\n".join(footnote), fontsize=6.5, va="bottom")
    fig.get_layout_engine().set(rect=(0, 0.03 + 0.022 * len(footnote), 1, 0.97 - 0.03 - 0.022 * len(footnote)))
    return fig

