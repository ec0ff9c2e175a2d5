"""A/B verdicts: per case, how much slower the current code is than the base, with a 95 % interval.

The samples are paired: round r measured the case under both sides within the same minute or
so (bench.execution.ab), so the ratio current/base of round r is free of the machine's drift
over minutes, which moves both. The estimate is the median of those per-round ratios; its
interval is the distribution-free one for a median (order statistics, from the sign test: no
assumption of normal noise, and one disturbed round moves it little). A case regresses only
when the whole interval lies above 1 + tolerance: the slowdown is both real (not noise) and
large enough to matter. Pure: DataFrames in, a DataFrame or text out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.analysis.gate import GateError, exit_status, markdown_table, markdown_text, ordered_verdicts, summary_line
from bench.results.selection import case_key, case_label

CONFIDENCE = 0.95
DEFAULT_TOLERANCE = 0.10


@dataclass(frozen=True)
class ABSettings:
    """How the A/B gate decides: the tolerated slowdown and the confidence of the interval."""

    tolerance: float = DEFAULT_TOLERANCE
    confidence: float = CONFIDENCE


def median_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Return the order-statistic interval (x(k), x(n+1-k)) covering the median with at least confidence, or None.

    k is the largest rank with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2; n < 6 has no
    95 % interval (the widest, min to max, covers 1 - 2/2^n).
    """
    ordered, n = sorted(values), len(values)
    tail = lambda k: sum(math.comb(n, i) for i in range(k)) / 2 ** n  # noqa: E731  P(Bin(n, 1/2) < k)
    k = max((k for k in range(1, n // 2 + 1) if tail(k) <= (1 - confidence) / 2), default=0)
    return (ordered[k - 1], ordered[n - k]) if k else None


def interval(values: list[float]) -> tuple[float, float, float]:
    """Return (low, high, coverage): the 95 % order-statistic interval of the median, or with fewer than
    6 values the range, which covers the median with probability 1 - 2/2^n."""
    found = median_interval(values)
    if found:
        return (*found, 0.95)
    return min(values), max(values), 1 - 2 / 2 ** len(values)


def least_rounds(confidence: float = CONFIDENCE) -> int:
    """Return the fewest paired rounds that give an interval at this confidence."""
    return next(n for n in range(1, 64) if median_interval([0.0] * n, confidence) is not None)


def paired_ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """Return, per case key and round, the ok median of each side (columns base, current) and their ratio."""
    ok = rows[rows["status"] == "ok"]
    wide = ok.pivot_table(index=[*case_key(), "round"], columns="side", values="median_ms", aggfunc="median")
    wide = wide.reindex(columns=["base", "current"]).dropna()
    return wide.assign(ratio=wide["current"] / wide["base"])


def compare_ab(rows: pd.DataFrame, settings: ABSettings = ABSettings()) -> pd.DataFrame:
    """Return one row per case of either side: medians over rounds, the change, its interval, verdict and why."""
    if not settings.tolerance >= 0 or not 0 < settings.confidence < 1:
        raise GateError(f"bad tolerance {settings.tolerance} or confidence {settings.confidence}")
    pairs = paired_ratios(rows).reset_index()
    ratios_of = {key: list(group["ratio"]) for key, group in pairs.groupby(list(case_key()), sort=False, dropna=False)}
    out = []
    for key, case_rows in rows.groupby(list(case_key()), sort=False, dropna=False):
        record = dict(zip(case_key(), key))
        sides = {side: case_rows[case_rows["side"] == side] for side in ("base", "current")}
        medians = {side: frame.loc[frame["status"] == "ok", "median_ms"].median() for side, frame in sides.items()}
        record.update({"base_ms": medians["base"], "current_ms": medians["current"]})
        record.update(_decide(sides, medians, ratios_of.get(key, []), settings))
        out.append(record)
    columns = [*case_key(), "base_ms", "current_ms", "change", "low", "high", "pairs", "verdict", "note"]
    return pd.DataFrame(out).reindex(columns=columns)


def _decide(sides: dict[str, pd.DataFrame], medians: dict[str, float], ratios: list[float],
            settings: ABSettings) -> dict[str, object]:
    if sides["base"].empty:
        return {"verdict": "new", "note": "not in the base revision's sweep", "pairs": 0}
    if sides["current"].empty:
        return {"verdict": "missing", "note": "not in the current sweep", "pairs": 0}
    interval = median_interval(ratios, settings.confidence)
    if interval is None:
        statuses = {side: sorted(set(frame["status"])) for side, frame in sides.items()}
        return {"verdict": "not-comparable", "pairs": len(ratios),
                "note": f"{len(ratios)} rounds ok on both sides, too few for a {settings.confidence:.0%} interval "
                        f"(statuses: base {'/'.join(statuses['base'])}, current {'/'.join(statuses['current'])})"}
    change = float(pd.Series(ratios).median())
    low, high = interval
    verdict, note = _judge(low, high, settings.tolerance)
    if verdict in ("regression", "improvement") and (change > 1) != (medians["current"] > medians["base"]):
        note += "; the two ms medians moved the other way: the rounds' paired ratios decide, not their medians"
    return {"change": change - 1, "low": low - 1, "high": high - 1, "pairs": len(ratios), "verdict": verdict, "note": note}


def _judge(low: float, high: float, tolerance: float) -> tuple[str, str]:
    interval = f"interval {low - 1:+.1%} to {high - 1:+.1%}"
    if low > 1 + tolerance:
        return "regression", f"slower: the whole {interval} is above +{tolerance:.0%}"
    if high < 1 / (1 + tolerance):
        return "improvement", f"faster: the whole {interval} is below -{1 - 1 / (1 + tolerance):.1%}"
    if high > 1 + tolerance:
        return "unchanged", f"not shown slower than +{tolerance:.0%}: {interval} reaches below it"
    return "unchanged", ""


HEADERS = ("case", "variant", "base ms", "current ms", "change", "95% interval", "instructions", "verdict", "why")
RIGHT_ALIGNED = frozenset({"base ms", "current ms", "change", "instructions"})


def table_cells(row: pd.Series) -> list[str]:
    """Return the text cells of one verdict row, in HEADERS order."""
    number = lambda value, fmt: "-" if pd.isna(value) else format(value, fmt)  # noqa: E731
    interval = "-" if pd.isna(row["low"]) else f"{row['low']:+.1%} .. {row['high']:+.1%}"
    return [case_label(row), str(row["variant"]), number(row["base_ms"], ".3f"), number(row["current_ms"], ".3f"),
            number(row["change"], "+.1%"), interval, number(row.get("instructions"), "+.1%"), str(row["verdict"]),
            str(row["note"] or "")]


def legend(settings: ABSettings, rounds: int) -> str:
    """Return what the numbers mean, so that a verdict never contradicts its milliseconds unexplained."""
    return (f"base ms / current ms: median over {rounds} rounds of each side's median time per call (lower is faster); "
            f"change: median of the per-round ratios current/base minus 1 (+ = slower), which is what is judged, not the "
            f"ratio of the two ms columns; {settings.confidence:.0%} interval: order statistics of those ratios; "
            f"regression: the whole interval above +{settings.tolerance:.0%}; instructions: Callgrind's count per call of the "
            f"variant's smallest case, current/base minus 1")


def markdown(verdicts: pd.DataFrame, settings: ABSettings, compared: str, rounds: int) -> str:
    """Return the verdicts as markdown: outcome, what was compared, the legend, then a table."""
    outcome = "FAIL" if exit_status(verdicts) else "pass"
    rows = [table_cells(row) for _, row in ordered_verdicts(verdicts).iterrows()]
    lines = [f"### A/B regression gate: {outcome}", "", markdown_text(compared), "", summary_line(verdicts), "",
             f"_{legend(settings, rounds)}._", "", *markdown_table(HEADERS, RIGHT_ALIGNED, rows)]
    return "\n".join(lines) + "\n"
