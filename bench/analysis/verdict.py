"""The answer of a sweep: the fastest exact variant of each family, and whether Slide beats Im2Col here. Pure pandas.

Per machine (host) and group of cases (device, dtype, pass, runtime, shape): among the rows
that passed the oracle check (`ok`), the fastest variant of each semantics family. Then the paper's claim, Slide
attention (`slide`, the official formulation) faster than Im2Col (`im2col`), as the ratio
im2col ms / slide ms with an interval:
  - several rounds (--repeats R): the ratio of each round, their median and the interval of the
    median (95 % from 6 rounds; with fewer, min to max, which covers it with 1 - 2/2^R);
  - one round: the ratio of the medians, and the ratios of the ends of the middle halves of the
    block times (their quartiles, from the blocks kept beside the CSV; without them median -/+
    IQR/2), so overlapping middle halves are inconclusive.
Blocks within a round follow each other in one process and are not independent draws, so
several rounds are the unit of the interval; a round's blocks only set the one-round interval.
`holds` when the whole interval is above 1, `does not hold` when below, else `inconclusive`.
"""

from __future__ import annotations

import pandas as pd

from bench.analysis.ab import interval
from bench.results.machines import machine_of, machine_title, per_machine
from bench.results.schema import SAMPLES_FIELD
from bench.results.selection import case_label, median_over_rounds

SLIDE, IM2COL = "slide", "im2col"
CLAIM = "Slide-Transformer's claim (Slide faster than Im2Col)"


def fastest_per_family(rows: pd.DataFrame) -> pd.DataFrame:
    """Return per machine, case group and family the fastest ok variant: machine, group, family, variant, median_ms, runner_up.

    Variants are ranked only against rows of the same machine (host): two hosts' rows of one case
    are two measurements of other hardware, not candidates of one race.
    """
    ok = median_over_rounds(rows)
    ok = ok[ok["status"] == "ok"]
    ok = ok.assign(machine=machine_of(ok), group=ok.apply(case_label, axis=1) if len(ok) else "")
    out = []
    for (machine, group, family), members in ok.groupby(["machine", "group", "family"], sort=True):
        ranked = members.sort_values("median_ms")
        best = ranked.iloc[0]
        out.append({"machine": machine, "group": group, "family": family, "variant": best["variant"],
                    "median_ms": float(best["median_ms"]), "variants": len(ranked),
                    "runner_up": ranked["variant"].iloc[1] if len(ranked) > 1 else ""})
    return pd.DataFrame(out, columns=["machine", "group", "family", "variant", "median_ms", "variants", "runner_up"])


def slide_vs_im2col(rows: pd.DataFrame) -> pd.DataFrame:
    """Return per machine and case group where both ran ok: machine, group, speedup (im2col / slide), low, high, basis, verdict.

    A ratio pairs Slide and Im2Col of one machine (host) and round only: the shards of a cluster
    run share the run id, so without the host their rounds would be paired across machines.
    """
    ok = rows[(rows["status"] == "ok") & rows["variant"].isin([SLIDE, IM2COL])]
    ok = ok.assign(round=ok["round"].fillna(1) if "round" in ok else 1, group=ok.apply(case_label, axis=1) if len(ok) else "",
                   machine=machine_of(ok))
    out = []
    for (machine, group), members in ok.groupby(["machine", "group"], sort=True):
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
        out.append({"machine": machine, "group": group, "speedup": float(pd.Series(ratios).median()), "low": low, "high": high,
                    "basis": basis, "verdict": verdict})
    return pd.DataFrame(out, columns=["machine", "group", "speedup", "low", "high", "basis", "verdict"])


def _block_interval(members: pd.DataFrame) -> tuple[float, float]:
    ends = {}
    for name in (SLIDE, IM2COL):
        row = members[members["variant"] == name].iloc[-1]
        blocks = row.get(SAMPLES_FIELD)
        if isinstance(blocks, tuple) and len(blocks) > 1:
            times = pd.Series(blocks, dtype=float)
            ends[name] = (float(times.quantile(0.25)), float(times.quantile(0.75)))
            continue
        half = float(row["iqr_ms"]) / 2 if pd.notna(row["iqr_ms"]) else 0.0
        low = float(row["median_ms"]) - half
        if pd.notna(row["min_ms"]):  # skewed block times (IQR above twice the median): no block was below the fastest
            low = max(low, float(row["min_ms"]))
        ends[name] = (low, float(row["median_ms"]) + half)
    slowest_slide = ends[SLIDE][1]
    fastest_slide = max(ends[SLIDE][0], 1e-12)
    return ends[IM2COL][0] / slowest_slide, ends[IM2COL][1] / fastest_slide


def claim_line(table: pd.DataFrame, where: str = "this machine") -> str:
    """Return the one line that ends every sweep: the claim holds, does not hold, or is inconclusive on `where`.

    A table of several machines gets one verdict per machine in the line, never one pooled over them.
    """
    hosts = list(dict.fromkeys(table["machine"])) if "machine" in table else []
    if len(hosts) > 1:
        return f"{CLAIM}, per machine: " + "; ".join(f"on {host}: {_claim_text(table[table['machine'] == host])}" for host in hosts)
    if table.empty:
        return f"{CLAIM} on {where}: not measured (this run has no ok {SLIDE} and {IM2COL} rows of one case)"
    return f"{CLAIM} on {where}: {_claim_text(table)}"


def _claim_text(table: pd.DataFrame) -> str:
    counts = table["verdict"].value_counts()
    overall = table["verdict"].iloc[0] if len(counts) == 1 else "inconclusive"
    detail = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    return (f"{overall.upper()} (Im2Col / Slide time {table['speedup'].min():.2f}-"
            f"{table['speedup'].max():.2f}x over {len(table)} case group{'s' * (len(table) != 1)}: {detail})")


def verdict_lines(rows: pd.DataFrame) -> list[str]:
    """Return the verdict in plain lines: the fastest exact variant per family and group, Slide vs Im2Col, the claim.

    Rows of several machines (a merged cluster run) get one block of lines per machine, headed by
    the machine and ending with its own claim line.
    """
    rows = rows[rows["scope"].fillna("op") != "model"] if "scope" in rows else rows
    parts = per_machine(rows)
    if len(parts) < 2:
        return _machine_lines(rows)
    lines = []
    for host, mine in parts:
        *details, claim = _machine_lines(mine, where=host)
        # The claim stays unindented: a sweep prints the lines that start with CLAIM in bold.
        lines += [f"{machine_title(mine)}:", *(f"  {line}" for line in details), claim]
    return lines


def _machine_lines(rows: pd.DataFrame, where: str = "this machine") -> list[str]:
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
    return [*lines, claim_line(table, where)]
