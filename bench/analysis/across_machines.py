"""The same case shapes on several machines (a merged cluster run): which shapes to compare, and their table. Pure pandas.

A case shape is a case without its variant and device: a CPU node's cpu rows and a GPU node's
cuda rows of one shape answer the same question, "how long does this case take there?".
Each machine's value of a case is the median over the rounds of its latest run there.
"""

from __future__ import annotations

import pandas as pd

from bench.analysis.frames import EXTRA_AXES
from bench.analysis.labels import axis_text, resolution_label, variant_order, worth_naming
from bench.results.machines import machine_of, machines
from bench.results.selection import latest_per_case


def shape_title(row: pd.Series, without: tuple[str, ...] = ("device",)) -> str:
    """Return a case shape without its variant and the axes `without` (device, runtime), e.g. '56×56 · batch 1 ·
    float32 forward' over 'heads 2 · ...'."""
    device = "" if "device" in without else f"{row['device']} "
    first = f"{resolution_label(row['height'], row['width'])} · batch {row['batch']} · {device}{row['dtype']} {row['pass']}"
    axes = [column for column in EXTRA_AXES if column not in without and worth_naming(column, row[column])]
    return first + "\n" + " · ".join(axis_text(column, row[column]) for column in axes)


def machine_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Return one row per machine and case (its latest run, median over rounds) with `machine` and `shape` columns."""
    latest = latest_per_case(frame)  # a machine given in two files: its latest run
    if latest.empty:
        return latest.assign(machine=pd.Series(dtype="string"), shape=pd.Series(dtype="string"))
    return latest.assign(machine=machine_of(latest), shape=latest.apply(shape_title, axis=1))


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Return the rows with a measured (ok, positive) median."""
    return rows[(rows["status"] == "ok") & (rows["median_ms"] > 0)]


def shared_shapes(ok: pd.DataFrame) -> list[str]:
    """Return the case shapes measured (ok) on two machines or more: those on the most machines first, then the largest."""
    size = ok["batch"] * ok["height"] * ok["width"] * ok["heads"] * ok["head_dim"] * ok["kernel_size"] ** 2
    per_shape = ok.assign(size=size).groupby("shape", sort=False).agg(machines=("machine", "nunique"), size=("size", "first"))
    shared = per_shape[per_shape["machines"] >= 2].sort_values(["machines", "size"], ascending=False, kind="stable")
    return list(shared.index)


def machine_table(frame: pd.DataFrame) -> tuple[str, pd.DataFrame] | None:
    """Return the largest case shape common to the most machines and its median ms, variant x (machine, device)
    (None unless some shape ran ok on two machines)."""
    ok = ok_rows(machine_rows(frame))
    shapes = shared_shapes(ok)
    if not shapes:
        return None
    rows = ok[ok["shape"] == shapes[0]]
    table = rows.pivot_table(index="variant", columns=["machine", "device"], values="median_ms", aggfunc="first")
    order = [(m, d) for m in machines(rows) for d in sorted(set(rows.loc[rows["machine"] == m, "device"]))]
    table = table.reindex(index=variant_order(rows["variant"]), columns=pd.MultiIndex.from_tuples(order, names=["machine", "device"]))
    return shapes[0], table
