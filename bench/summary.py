"""Summary tables of a run: median per case and speed-up relative to a reference variant."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.results import CASE_KEY

SHAPE_KEY = tuple(column for column in CASE_KEY if column != "variant")


def add_speedup(frame: pd.DataFrame, reference: str = "im2col") -> pd.DataFrame:
    """Return frame with `speedup` = reference median / row median, matched on the case shape."""
    ok = frame[frame["status"] == "ok"]
    ref = ok[ok["variant"] == reference][[*SHAPE_KEY, "median_ms"]].rename(columns={"median_ms": "reference_ms"})
    merged = frame.merge(ref, on=list(SHAPE_KEY), how="left")
    merged["speedup"] = merged["reference_ms"] / merged["median_ms"].where(merged["status"] == "ok")
    return merged.drop(columns="reference_ms")


def case_label(row: pd.Series) -> str:
    """Return a short label of a row's case shape, e.g. 'cpu float32 forward b1 56x56 h2 d32 k7'."""
    compiled = " compiled" if row.get("compiled") is True else ""
    return (f"{row['device']} {row['dtype']} {row['pass']} b{row['batch']} {row['height']}x{row['width']} "
            f"h{row['heads']} d{row['head_dim']} k{row['kernel_size']}{compiled}")


def summary_table(frame: pd.DataFrame, reference: str = "im2col", title: str = "") -> Table:
    """Return a rich table: one line per case, its median, spread, speed-up and error."""
    table = Table(title=title)
    for header in ("case", "variant", "status", "median ms", "IQR %", f"x vs {reference}", "max abs err"):
        table.add_column(header, justify="left" if header in ("case", "variant", "status") else "right")
    ordered = add_speedup(frame, reference).sort_values([*SHAPE_KEY, "variant"], kind="stable")
    previous = None
    for _, row in ordered.iterrows():
        ok = row["status"] == "ok"
        label = case_label(row)
        table.add_row(
            label if label != previous else "",
            str(row["variant"]),
            "ok" if ok else f"[yellow]{row['status']}[/]",
            f"{row['median_ms']:.3f}" if ok else "-",
            f"{100 * row['iqr_ms'] / row['median_ms']:.0f}" if ok else "-",
            f"{row['speedup']:.2f}" if ok and pd.notna(row["speedup"]) else "-",
            f"{row['max_abs_err']:.1e}" if pd.notna(row.get("max_abs_err")) else "-",
            end_section=False,
        )
        previous = label
    return table


def print_failures(frame: pd.DataFrame, console: Console) -> None:
    """Print one line per non-ok row with its reason."""
    for _, row in frame[frame["status"] != "ok"].iterrows():
        console.print(f"[yellow]{row['status']}[/] {row['variant']} {row['device']} {row['height']}x{row['width']} "
                      f"b{row['batch']} {row['pass']}: {escape(str(row['reason']))}")  # reasons may hold [brackets]
