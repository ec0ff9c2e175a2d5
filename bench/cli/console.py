"""What the sweep prints: a wide console, the summary table of a run, one line per failed case."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.analysis.summary import add_speedup
from bench.results.selection import NOISE_THRESHOLD, REFERENCE_VARIANT, case_label, is_noisy, shape_key


def message_console() -> Console:
    """Return the stderr console of progress and messages: a message is never wrapped mid-phrase when piped."""
    return Console(stderr=True, soft_wrap=True)


def wide_console(min_width: int = 110) -> Console:
    """Return a stdout console at least min_width columns wide, so tables stay readable when piped."""
    console = Console()
    console.width = max(console.width, min_width)
    return console


def _spread_cell(row: pd.Series) -> str:
    """Return the IQR as % of the median: 'n=1' when one block was measured (no spread seen), '~' when noisy."""
    if row["n_measurements"] == 1:
        return "[yellow]n=1[/]"
    percent = f"{100 * row['iqr_ms'] / row['median_ms']:.0f}"
    return f"[yellow]{percent} ~[/]" if is_noisy(row["iqr_ms"], row["median_ms"]) else percent


def summary_table(frame: pd.DataFrame, reference: str = REFERENCE_VARIANT, title: str = "") -> Table:
    """Return a rich table: one line per case (median over rounds), its spreads, speed-up and error."""
    rounds = "rounds" in frame.columns and (frame["rounds"] > 1).any()
    gradients = frame.get("grad_max_abs_err", pd.Series(dtype=float)).notna().any()
    table = Table(title=title, caption=f"~: noisy (IQR above {NOISE_THRESHOLD:.0%} of the median); n=1: timed in one block")
    headers = ["case", "variant", "status", "median ms", "IQR %", *(["rounds ±%"] if rounds else []), f"x vs {reference}", "max abs err",
               *(["grad abs err"] if gradients else [])]
    for header in headers:
        table.add_column(header, justify="left" if header in ("case", "variant", "status") else "right")
    ordered = add_speedup(frame, reference).sort_values([*shape_key(), "variant"], kind="stable")
    previous = None
    for _, row in ordered.iterrows():
        ok = row["status"] == "ok"
        label = case_label(row)
        spread = [f"{50 * row['round_spread']:.0f}" if ok and pd.notna(row["round_spread"]) else "-"] if rounds else []
        table.add_row(  # names come from files too (--resume): escaped, never read as markup
            escape(label) if label != previous else "",
            escape(str(row["variant"])),
            "ok" if ok else f"[yellow]{escape(str(row['status']))}[/]",
            f"{row['median_ms']:.3f}" if ok else "-",
            _spread_cell(row) if ok else "-",
            *spread,
            f"{row['speedup']:.2f}" if ok and pd.notna(row["speedup"]) else "-",
            f"{row['max_abs_err']:.1e}" if pd.notna(row.get("max_abs_err")) else "-",
            *([f"{row['grad_max_abs_err']:.1e}" if pd.notna(row.get("grad_max_abs_err")) else "-"] if gradients else []),
        )
        previous = label
    return table


def print_failures(frame: pd.DataFrame, console: Console) -> None:
    """Print one line per non-ok row with its reason."""
    for _, row in frame[frame["status"] != "ok"].iterrows():
        console.print(f"[yellow]{escape(str(row['status']))}[/] " + escape(f"{row['variant']} {row['device']} {row['height']}x"
                      f"{row['width']} b{row['batch']} {row['pass']}: {row['reason']}"))  # values may hold [brackets]


# How each gate verdict is shown in the terminal (both gate modes).
VERDICT_STYLE = {
    "regression": "bold red", "improvement": "green", "new": "cyan", "missing": "yellow", "not-comparable": "yellow",
}


def verdict_table(title: str, caption: str, headers: tuple[str, ...], right_aligned: frozenset[str],
                  rows: list[tuple[list[str], str]]) -> Table:
    """Return a gate's verdicts as a rich table: rows of (cells, verdict), each styled by its verdict, cells escaped."""
    table = Table(title=title, caption=caption)
    for header in headers:
        table.add_column(header, justify="right" if header in right_aligned else "left")
    for cells, verdict in rows:
        table.add_row(*map(escape, cells), style=VERDICT_STYLE.get(verdict))
    return table
