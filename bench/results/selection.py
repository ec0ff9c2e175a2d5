"""Which rows belong together and which one counts: the case key, the reference, the noise rule."""

from __future__ import annotations

import pandas as pd

from bench.axes import key_columns as case_key  # the columns that name a case: equal values, the same thing measured
from bench.results.schema import SAMPLES_FIELD

# The column that names the machine of a row: rows of one case from two hosts are two measurements (machines.py).
MACHINE = "host"


def row_key() -> tuple[str, ...]:
    """Return the columns that name one row: a case in a round of a run on a host (a merge keeps one row per value)."""
    return ("run_id", MACHINE, "round", *case_key())


def shape_key() -> tuple[str, ...]:
    """Return a case without its variant: the columns that variants are compared on (speed-ups, the gate's ratios)."""
    return tuple(column for column in case_key() if column != "variant")


def __getattr__(name: str) -> tuple[str, ...]:  # bench.results.CASE_KEY and SHAPE_KEY for notebooks: the current ones
    if name in ("CASE_KEY", "SHAPE_KEY"):
        return case_key() if name == "CASE_KEY" else shape_key()
    raise AttributeError(name)

# The variant every speed-up and every normalised gate ratio is measured against.
REFERENCE_VARIANT = "im2col"
# A row whose IQR exceeds this fraction of its median is noisy (flagged in tables, figures and reasons).
NOISE_THRESHOLD = 0.10


def case_label(row: pd.Series | dict) -> str:
    """Return a short label of a row's case shape, e.g. 'cpu float32 forward b1 56x56 h2 d32 k7'
    ('k7 dil2 inductor' when dilated and compiled)."""
    runtime = row.get("runtime", "eager")
    runtime = f" {runtime}" if not pd.isna(runtime) and runtime != "eager" else ""
    dilation = row.get("dilation", 1)
    dilated = f" dil{dilation}" if not pd.isna(dilation) and dilation != 1 else ""
    return (f"{row['device']} {row['dtype']} {row['pass']} b{row['batch']} {row['height']}x{row['width']} "
            f"h{row['heads']} d{row['head_dim']} k{row['kernel_size']}{dilated}{runtime}")


def is_noisy(iqr_ms: object, median_ms: object) -> bool:
    """Return whether an IQR exceeds NOISE_THRESHOLD of its median (False where either is missing)."""
    if pd.isna(iqr_ms) or pd.isna(median_ms):
        return False
    return float(iqr_ms) > NOISE_THRESHOLD * float(median_ms)


def noisy_rows(frame: pd.DataFrame) -> pd.Series:
    """Return, per row of frame, whether it is noisy (is_noisy of its iqr_ms and median_ms)."""
    return pd.Series([is_noisy(i, m) for i, m in zip(frame["iqr_ms"], frame["median_ms"])], index=frame.index, dtype=bool)


def latest_per_case(frame: pd.DataFrame, within: tuple[str, ...] = ()) -> pd.DataFrame:
    """Return one row per case (and per `within` column): the latest by timestamp, in the original order.

    For showing a file that was appended to: the newest run of a case replaces older ones; the
    rounds of one run count as one measurement (median_over_rounds).
    """
    ordered = median_over_rounds(frame, within).sort_values("timestamp", kind="stable", na_position="first")
    return ordered.drop_duplicates(subset=[*within, MACHINE, *case_key()], keep="last").sort_index()


def fastest_per_case(frame: pd.DataFrame) -> pd.DataFrame:
    """Return one row per case: its fastest ok row over the runs in the frame, else its last row.

    For gating several appended runs of one sweep: load from other processes on a shared
    machine only ever adds time, so the fastest run is the least disturbed one. The rounds of
    one run count as one run (median_over_rounds).
    """
    frame = median_over_rounds(frame)
    ranked = frame.assign(_order=range(len(frame)), _ok=frame["status"] == "ok")
    ranked = ranked.sort_values(["_ok", "median_ms", "_order"], ascending=[False, True, False], na_position="last")
    best = ranked.drop_duplicates(subset=[MACHINE, *case_key()], keep="first").sort_values("_order")
    return best.drop(columns=["_order", "_ok"]).reset_index(drop=True)


def median_over_rounds(frame: pd.DataFrame, within: tuple[str, ...] = ()) -> pd.DataFrame:
    """Return one row per run and case: with several rounds, their pooled blocks' statistics and the spread between rounds.

    A case measured in R rounds of one run (--repeats R) becomes one row (a case with no ok round
    keeps its last row). Its ok rounds' timed blocks are pooled: `median_ms`, `iqr_ms` and
    `min_ms` are the median, interquartile range and minimum of every block's time per call
    (the column block_ms, bench.results.load), `n_measurements` the number of blocks. So drift
    between rounds widens the IQR that the gate and the tables read as noise. Rows without
    blocks (files written before samples were kept) take the median of the round medians.
    `round_spread` is (max - min) / median of the round medians, `rounds` how many rounds there were.
    """
    keys = [*within, "run_id", MACHINE, *case_key()]  # a cluster run's shards share the run id, not the host
    frame = frame.reset_index(drop=True)
    ok = frame["status"] == "ok"
    group = frame.groupby(keys, dropna=False, sort=False).ngroup()
    alone = group.map(group.value_counts()) == 1
    # A case measured once (the common case) is its own row: no loop over it.
    spread = frame["round_spread"].where(~ok) if "round_spread" in frame else pd.Series(float("nan"), index=frame.index)
    rows = [frame[alone].assign(rounds=1, round_spread=spread[alone], _order=frame.index[alone])]
    several = frame[~alone].assign(_order=frame.index[~alone], _ok=ok[~alone]).groupby(group[~alone], sort=False)
    rows += [pd.DataFrame([_pooled(rounds) for _, rounds in several])] if len(several) else []
    out = pd.concat(rows).sort_values("_order").drop(columns=["_order", "_ok"], errors="ignore").reset_index(drop=True)
    out = out.astype({column: frame[column].dtype for column in frame.columns})
    return out.astype({"rounds": "Int64", "round_spread": "float64"})


def _pooled(group: pd.DataFrame) -> pd.Series:
    """Return the one row of a case's rounds in one run (median_over_rounds)."""
    ok = group[group["_ok"]]
    row = (ok if len(ok) else group).iloc[-1].copy()
    row["rounds"], row["_order"] = len(group), group["_order"].iloc[0]
    if len(ok) > 1:
        medians = ok["median_ms"].astype(float)
        row["median_ms"] = medians.median()
        row["round_spread"] = (medians.max() - medians.min()) / medians.median()
        blocks = list(ok[SAMPLES_FIELD]) if SAMPLES_FIELD in ok else [None]
        if all(isinstance(times, tuple) and times for times in blocks):
            pooled = pd.Series([ms for times in blocks for ms in times], dtype=float)
            row["median_ms"], row["min_ms"], row["n_measurements"] = pooled.median(), pooled.min(), len(pooled)
            row["iqr_ms"] = pooled.quantile(0.75) - pooled.quantile(0.25)
            row[SAMPLES_FIELD] = tuple(pooled)
    elif len(ok):
        row["round_spread"] = float("nan")
    return row
