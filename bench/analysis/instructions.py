"""Instruction counts in the A/B verdicts: a deterministic second signal beside the times.

Callgrind's count of one call (bench.execution.instructions) of the same code on the same
inputs repeats to well under 1 %, so an increase beyond INSTRUCTION_TOLERANCE is a real
change in the work done. It fails the gate only where it is clearly the variant's own code:
the module that defines the variant differs between the two revisions. Anything else (a
shared helper, the harness, torch) is reported in the note and left to the times. Pure.
"""

from __future__ import annotations

import pandas as pd

INSTRUCTION_TOLERANCE = 0.03


def instruction_changes(counts: pd.DataFrame) -> pd.DataFrame:
    """Return per variant: base and current instructions per call and the relative change (NaN where one is missing)."""
    ok = counts.dropna(subset=["per_call"])
    wide = ok.pivot_table(index="variant", columns="side", values="per_call", aggfunc="median").reindex(columns=["base", "current"])
    return wide.assign(change=wide["current"] / wide["base"] - 1)


def judge_instructions(verdicts: pd.DataFrame, counts: pd.DataFrame, changed: set[str] | None) -> pd.DataFrame:
    """Return verdicts with an `instructions` column (the change per call) and the verdicts the counts decide.

    changed: the variants whose defining module differs between the sides (None: not known,
    so no count fails the gate).
    """
    changes = instruction_changes(counts) if len(counts) else pd.DataFrame(columns=["base", "current", "change"])
    out = verdicts.assign(instructions=verdicts["variant"].map(changes["change"]))
    for index, row in out.iterrows():
        change = row["instructions"]
        if pd.isna(change) or change <= INSTRUCTION_TOLERANCE:
            continue
        own = changed is not None and row["variant"] in changed
        text = f"instructions per call {change:+.1%} (above {INSTRUCTION_TOLERANCE:.0%})"
        if own and row["verdict"] in ("unchanged", "regression"):
            out.at[index, "verdict"] = "regression"
            text += ", in the variant's own changed module"
        else:
            why = ("the times show it faster" if own else "its module is unchanged" if changed is not None
                   else "which files changed is unknown")
            text += f": reported only ({why})"
        out.at[index, "note"] = "; ".join(filter(None, [str(row["note"] or ""), text]))
    return out


def problems(counts: pd.DataFrame) -> list[str]:
    """Return one line per count that could not be taken (variant, side and why)."""
    failed = counts[counts["per_call"].isna()]
    return [f"{row.variant} ({row.side}): {row.problem}" for row in failed.itertuples()]
