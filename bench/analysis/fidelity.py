"""Fidelity ratios: how far a case's number moves with what ran before it, and from an independent plain timing."""

from __future__ import annotations

import math

import pandas as pd

HISTORIES = ("fresh", "after", "reversed")  # measured through the harness
HISTORY_TARGET = 0.10  # max/min across the histories within 10 %
PLAIN_TARGET = 0.15  # each history within 15 % of the plain process


def fidelity_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Return one row per case: its median ms per condition (over rounds), the ratios and verdicts.

    Each history's time is divided by the plain process's time *of the same round* (measured
    in the same minute) before taking the median over rounds, so the VM's drift between
    rounds cancels; `spread` is max/min of those medians and `vs_plain` the one farthest from 1.
    """
    ok = rows[rows["status"] == "ok"]
    per_round = ok.pivot_table(index=["variant", "batch", "round"], columns="condition", values="median_ms", aggfunc="median")
    per_round = per_round.reindex(columns=[*HISTORIES, "plain"])
    ratios = per_round[list(HISTORIES)].div(per_round["plain"], axis=0).groupby(level=["variant", "batch"]).median()
    wide = per_round.groupby(level=["variant", "batch"]).median()
    wide["spread"] = ratios.max(axis=1) / ratios.min(axis=1)
    wide["vs_plain"] = ratios.apply(_farthest_from_one, axis=1)
    wide["within_histories"] = wide["spread"] <= 1 + HISTORY_TARGET
    wide["within_plain"] = wide["vs_plain"].map(lambda r: 1 / (1 + PLAIN_TARGET) <= r <= 1 + PLAIN_TARGET)
    return wide.reset_index()


def _farthest_from_one(ratios: pd.Series) -> float:
    measured = ratios.dropna()
    return max(measured, key=lambda ratio: abs(math.log(ratio))) if len(measured) else float("nan")
