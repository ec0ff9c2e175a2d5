"""Fidelity ratios: how far a case's number moves with what ran before it, and from an independent plain timing."""

from __future__ import annotations

import math

import pandas as pd

HISTORIES = ("fresh", "after", "reversed")  # measured through the harness
HISTORY_TARGET = 0.10  # max/min across the histories within 10 %
PLAIN_TARGET = 0.15  # each history within 15 % of the plain process


def fidelity_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Return one row per case: its median per condition (over rounds), max/min across histories, worst ratio to plain, verdicts."""
    ok = rows[rows["status"] == "ok"]
    wide = ok.pivot_table(index=["variant", "batch"], columns="condition", values="median_ms", aggfunc="median")
    wide = wide.reindex(columns=[*HISTORIES, "plain"])
    histories = wide[list(HISTORIES)]
    wide["spread"] = histories.max(axis=1) / histories.min(axis=1)
    to_plain = histories.div(wide["plain"], axis=0)
    wide["vs_plain"] = to_plain.apply(_farthest_from_one, axis=1)
    wide["within_histories"] = wide["spread"] <= 1 + HISTORY_TARGET
    wide["within_plain"] = wide["vs_plain"].map(lambda r: 1 / (1 + PLAIN_TARGET) <= r <= 1 + PLAIN_TARGET)
    return wide.reset_index()


def _farthest_from_one(ratios: pd.Series) -> float:
    measured = ratios.dropna()
    return max(measured, key=lambda ratio: abs(math.log(ratio))) if len(measured) else float("nan")
