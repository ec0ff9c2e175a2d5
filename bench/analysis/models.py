"""The paper's model-level claims against measured model rows: speed ratios per round, their interval, a verdict. Pure.

The paper's six arrows (figs/exp_speed.png of LeapLabTHU/Slide-Transformer; docs/paper.md)
compare models at matched accuracy, not of one size: a Slide model against a baseline of about
its Top-1, on Metal (MPS) or an iPhone 12. The same-size pairs of Swin-T have no arrow in the
paper and are judged with no paper factor. The verdict is about the direction (is the Slide
model faster here?); the measured factor stands beside the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.analysis.ab import interval
from bench.results.machines import machine_of

GROUP = ["host", "device", "runtime", "dtype", "height", "batch", "pass"]  # a merged file's machines are judged apart


@dataclass(frozen=True)
class Claim:
    """`faster` runs `factor` times faster than `slower` in the paper (on `where`); factor None: no arrow in the paper.
    paper_ms: the arrow's two points (faster, slower) in ms as read off figs/exp_speed.png (pixels, so approximate)."""

    name: str
    faster: str
    slower: str
    factor: float | None
    where: str
    paper_ms: tuple[float, float] | None = None


MATCHED = "matched accuracy"
CLAIMS = (
    Claim("Slide-PVT-M vs Swin-S", "slide-pvt-m", "swin-s", 1.4, f"Metal (MPS), {MATCHED}", (66, 94)),
    Claim("Slide-PVT-S vs PVT-L on Metal", "slide-pvt-s", "pvt-l", 2.3, f"Metal (MPS), {MATCHED}; drawn about 2.0x", (42.5, 84)),
    Claim("Slide-Swin-S vs Swin-B", "slide-swin-s", "swin-b", 1.7, f"iPhone 12, {MATCHED}", (314, 529)),
    Claim("Slide-PVT-S vs PVT-L on iPhone 12", "slide-pvt-s", "pvt-l", 1.7, f"iPhone 12, {MATCHED}", (194, 326)),
    Claim("Slide-Swin-S vs Im2Col-Swin-B", "slide-swin-s", "im2col-swin-b", 3.9, f"iPhone 12, {MATCHED}", (315, 1222)),
    Claim("Slide-PVT-M vs Im2Col-PVT-M", "slide-pvt-m", "im2col-pvt-m", 3.7, f"iPhone 12, {MATCHED}", (275, 1010)),
    Claim("Slide-Swin-T vs Swin-T", "slide-swin-t", "swin-t", None, "no arrow for this same-size pair"),
    Claim("Slide-Swin-T vs Im2Col-Swin-T", "slide-swin-t", "im2col-swin-t", None, "no arrow for this same-size pair"),
)
PAPER_ARROWS = CLAIMS[:6]
ANCHOR = Claim("swin-t (this harness) vs timm's Swin-T", "swin-t", "timm-swin-t", 1.0, "the same network")


def speedups(rows: pd.DataFrame, claim: Claim) -> pd.DataFrame:
    """Return per group and round the ratio slower ms / faster ms (above 1: `faster` is faster)."""
    ok = rows[(rows["status"] == "ok") & rows["variant"].isin([claim.faster, claim.slower])]
    wide = ok.pivot_table(index=[*GROUP, "round"], columns="variant", values="median_ms", aggfunc="median")
    wide = wide.reindex(columns=[claim.faster, claim.slower]).dropna()
    return (wide[claim.slower] / wide[claim.faster]).rename("speedup").reset_index()


def verdicts(rows: pd.DataFrame, claims: tuple[Claim, ...] = (*CLAIMS, ANCHOR)) -> pd.DataFrame:
    """Return one row per claim and group: the median speedup, its interval and coverage, and the verdict."""
    rows = rows.assign(round=rows["round"].fillna(1) if "round" in rows else 1, host=machine_of(rows))
    out = []
    for claim in claims:
        for key, group in speedups(rows, claim).groupby(GROUP, sort=True):
            values = list(group["speedup"])
            low, high, coverage = interval(values)
            if claim is ANCHOR:
                verdict = "reference"
            elif len(values) < 2:
                verdict = "inconclusive"
            else:
                verdict = "holds" if low > 1 else "does not hold" if high < 1 else "inconclusive"
            out.append({**dict(zip(GROUP, key)), "claim": claim.name, "speedup": float(pd.Series(values).median()),
                        "low": low, "high": high, "coverage": coverage, "rounds": len(values), "paper": claim.factor,
                        "paper_where": claim.where, "verdict": verdict})
    return pd.DataFrame(out, columns=[*GROUP, "claim", "speedup", "low", "high", "coverage", "rounds", "paper",
                                      "paper_where", "verdict"])


def lines(table: pd.DataFrame) -> list[str]:
    """Return one plain-words line per verdict."""
    text = []
    several = table["host"].nunique() > 1
    for _, row in table.iterrows():
        where = (f"{row['host'] + ' ' if several else ''}{row['device']} {row['runtime']} {row['dtype']} "
                 f"{row['height']}x{row['height']} batch {row['batch']} {row['pass']}")
        measured = (f"{row['speedup']:.2f}x (interval {row['low']:.2f}-{row['high']:.2f}, {row['coverage']:.0%} over "
                    f"{row['rounds']} round{'s' * (row['rounds'] != 1)})")
        if row["verdict"] == "reference":
            text.append(f"{row['claim']}, {where}: timm takes {measured} the time of this harness's swin-t (same weights, same output)")
            continue
        slower = " (below 1: slower)" if row["speedup"] < 1 else ""
        paper = f"about {row['paper']:g}x ({row['paper_where']})" if pd.notna(row["paper"]) else row["paper_where"]
        text.append(f"{row['claim']}, {where}: {row['claim'].split(' vs ')[0]}'s speed-up {measured}{slower}; paper: {paper} "
                    f"-> {row['verdict'].upper()} here")
    return text


def unjudged(table: pd.DataFrame, claims: tuple[Claim, ...]) -> list[str]:
    """Return one line per claim of `claims` that the verdicts table has no row for (a model without an ok row)."""
    judged = set(table["claim"])
    return [f"{claim.name}: NOT JUDGED here: {claim.faster} or {claim.slower} has no ok row (paper: about "
            f"{claim.factor:g}x, {claim.where})" for claim in claims if claim.name not in judged]


def model_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the rows of whole models (scope `model`) of a results frame."""
    return frame[frame["scope"] == "model"] if "scope" in frame else frame.iloc[0:0]


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Return per config and group the medians over rounds: ms, images/s, GFLOP per image, parameters (M), error, statuses."""
    out = []
    for key, group in rows.assign(host=machine_of(rows)).groupby(["variant", *GROUP], sort=True):
        ok = group[group["status"] == "ok"]
        batch = dict(zip(["variant", *GROUP], key))["batch"]
        median = lambda column: ok[column].median() if len(ok) and ok[column].notna().any() else float("nan")  # noqa: E731
        out.append({**dict(zip(["config", *GROUP], key)), "ms": median("median_ms"), "images_per_s": median("throughput_per_s"),
                    "gflop_per_image": median("gflop") / batch, "params_m": median("params") / 1e6,
                    "max_abs_err": median("max_abs_err"), "rounds_ok": f"{len(ok)}/{len(group)}",
                    "status": ", ".join(sorted(set(group["status"])))})
    return pd.DataFrame(out)
