"""The answer of a sweep: the fastest exact variant of each family, and whether Slide beats Im2Col here. Pure pandas.

Per group of cases (device, dtype, pass, compiled, shape): among the rows that passed the oracle
check (`ok`), the fastest variant of each semantics family. Then the paper's claim, Slide
attention (`slide`, the official formulation) faster than Im2Col (`im2col`), as the ratio
im2col ms / slide ms with an interval:
  - several rounds (--repeats R): the ratio of each round, their median and the interval of the
    median (95 % from 6 rounds; with fewer, min to max, which covers it with 1 - 2/2^R);
  - one round: the ratio of the medians, and the ratios of the ends of the middle halves of the
    block times (median -/+ IQR/2), so overlapping middle halves are inconclusive.
`holds` when the whole interval is above 1, `does not hold` when below, else `inconclusive`.
"""

from __future__ import annotations

import pandas as pd

from bench.analysis.ab import interval
from bench.results.selection import case_label, median_over_rounds

SLIDE, IM2COL = "slide", "im2col"
CLAIM = "Slide-Transformer's claim (Slide faster than Im2Col)"


def fastest_per_family(rows: pd.DataFrame) -> pd.DataFrame:
    """Return per case group and family the fastest ok variant: group, family, variant, median_ms, runner_up."""
    ok = median_over_rounds(rows)
    ok = ok[ok["status"] == "ok"]
    out = []
    for (group, family), members in ok.assign(group=ok.apply(case_label, axis=1)).groupby(["group", "family"], sort=True):
        ranked = members.sort_values("median_ms")
        best = ranked.iloc[0]
        out.append({"group": group, "family": family, "variant": best["variant"], "median_ms": float(best["median_ms"]),
                    "variants": len(ranked), "runner_up": ranked["variant"].iloc[1] if len(ranked) > 1 else ""})
    return pd.DataFrame(out, columns=["group", "family", "variant", "median_ms", "variants", "runner_up"])


def slide_vs_im2col(rows: pd.DataFrame) -> pd.DataFrame:
    """Return per case group where both ran ok: speedup (im2col / slide), low, high, basis, verdict."""
    ok = rows[(rows["status"] == "ok") & rows["variant"].isin([SLIDE, IM2COL])]
    ok = ok.assign(round=ok["round"].fillna(1) if "round" in ok else 1, group=ok.apply(case_label, axis=1) if len(ok) else "")
    out = []
    for group, members in ok.groupby("group", sort=True):
        per_round = members.pivot_table(index=["run_id", "round"], columns="variant", values="median_ms", aggfunc="median")
        per_round = per_round.reindex(columns=[SLIDE, IM2COL]).dropna()
        if per_round.empty:
            continue
        ratios = list(per_round[IM2COL] / per_round[SLIDE])
        if len(ratios) > 1:
            low, high, coverage = interval(ratios)
            basis = f"{len(ratios)} rounds, {coverage:.0%} interval"
        else:
            low, high = _block_interval(members)
            basis = "1 round: middle halves of the block times (--repeats 3 or more for an interval over rounds)"
        verdict = "holds" if low > 1 else "does not hold" if high < 1 else "inconclusive"
        out.append({"group": group, "speedup": float(pd.Series(ratios).median()), "low": low, "high": high,
                    "basis": basis, "verdict": verdict})
    return pd.DataFrame(out, columns=["group", "speedup", "low", "high", "basis", "verdict"])


def _block_interval(members: pd.DataFrame) -> tuple[float, float]:
    ends = {}
    for name in (SLIDE, IM2COL):
        row = members[members["variant"] == name].iloc[-1]
        half = float(row["iqr_ms"]) / 2 if pd.notna(row["iqr_ms"]) else 0.0
        ends[name] = (float(row["median_ms"]) - half, float(row["median_ms"]) + half)
    slowest_slide = ends[SLIDE][1]
    fastest_slide = max(ends[SLIDE][0], 1e-12)
    return ends[IM2COL][0] / slowest_slide, ends[IM2COL][1] / fastest_slide


def claim_line(table: pd.DataFrame) -> str:
    """Return the one line that ends every sweep: the claim holds, does not hold, or is inconclusive here."""
    if table.empty:
        return f"{CLAIM} on this machine: not measured (this run has no ok {SLIDE} and {IM2COL} rows of one case)"
    counts = table["verdict"].value_counts()
    overall = table["verdict"].iloc[0] if len(counts) == 1 else "inconclusive"
    detail = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    return (f"{CLAIM} on this machine: {overall.upper()} (Im2Col / Slide time {table['speedup'].min():.2f}-"
            f"{table['speedup'].max():.2f}x over {len(table)} case group{'s' * (len(table) != 1)}: {detail})")


def verdict_lines(rows: pd.DataFrame) -> list[str]:
    """Return the verdict in plain lines: the fastest exact variant per family and group, Slide vs Im2Col, the claim."""
    rows = rows[rows["scope"].fillna("op") != "model"] if "scope" in rows else rows
    lines = ["fastest exact variant of each family (median ms):"]
    for group, members in fastest_per_family(rows).groupby("group", sort=True):
        best = " · ".join(f"{row['family']} {row['variant']} {row['median_ms']:.3g}" for _, row in members.iterrows())
        lines.append(f"  {group}: {best}")
    table = slide_vs_im2col(rows)
    if len(table):
        lines.append("Slide vs Im2Col (Im2Col ms / Slide ms: above 1, Slide is faster), [interval]:")
    for _, row in table.iterrows():
        lines.append(f"  {row['group']}: {row['speedup']:.2f}x [{row['low']:.2f}-{row['high']:.2f}] {row['verdict']}")
    for basis in table["basis"].unique():
        lines.append(f"  (interval: {basis})")
    return [*lines, claim_line(table)]
