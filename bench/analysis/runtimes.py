"""Which formulation runs under which runtime, and how fast: a table per case shape, variant x runtime. Pure pandas.

A runtime is how a variant's forward runs: eager PyTorch, torch.compile (inductor), torch.export
plus an AOTInductor package (export), the ONNX export under ONNX Runtime (onnxruntime), ExecuTorch
with its XNNPACK delegate (executorch) or OpenVINO's CPU device (openvino). One
variant under two runtimes computes the same thing, so the ratio to its own eager row is what the
runtime buys, and a cell without a time names the step that refused the formulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.analysis.across_machines import shape_title
from bench.analysis.blocks import Block, Table
from bench.analysis.labels import variant_order
from bench.analysis.summary import median_text, milliseconds, times
from bench.results.schema import RUNTIMES
from bench.results.selection import MACHINE, shape_key

HEADING = "## Which formulation runs where, and how fast"
INTRO = ("Median ms of one call per runtime (`~`: noisy); in brackets the speed-up over the same variant run eagerly "
         "(eager ms / this ms). `inductor` = torch.compile; `export` = torch.export plus an AOTInductor package; "
         "`onnxruntime` = the ONNX export (dynamo exporter) run by ONNX Runtime's CPU execution provider with all graph "
         "optimisations; `executorch` = torch.export lowered to ExecuTorch with the XNNPACK partitioner (the rest on its "
         "portable kernels); `openvino` = torch.export converted by OpenVINO and compiled for its CPU device (latency hint, "
         "the case's precision). The one-off export time is its own column (`export_ms`), never in these medians. A cell that "
         "says error names the step that failed; the full reason is under \"Cases not measured\".")


@dataclass(frozen=True)
class RuntimeTable:
    """One case shape's variants x runtimes: its title, the header, a row of cells per variant, a one-line summary."""

    title: str
    header: list[str]
    rows: list[list[str]]
    summary: str


def runtimes_present(frame: pd.DataFrame) -> list[str]:
    """Return the runtimes of the rows: those of RUNTIMES in that order (eager first), then any other by name."""
    present = set(frame["runtime"].dropna().astype(str))
    return [name for name in RUNTIMES if name in present] + sorted(present - set(RUNTIMES))


def not_run_text(row: pd.Series) -> str:
    """Return the short word for a row without a time: its status, and for an error the step that failed
    (the reason's text before ' failed:', e.g. 'error: torch.onnx.export')."""
    reason = "" if pd.isna(row["reason"]) else str(row["reason"])
    if row["status"] == "error" and " failed:" in reason:
        return f"error: {reason.split(' failed:', 1)[0].strip()}"
    return str(row["status"])


def with_eager_ratio(rows: pd.DataFrame) -> pd.DataFrame:
    """Return one case shape's rows with `eager_ratio` = the same variant's eager median / the row's median
    (NaN unless both ran ok)."""
    ok = rows[(rows["status"] == "ok") & (rows["median_ms"] > 0)]
    eager = ok[ok["runtime"] == "eager"].drop_duplicates("variant", keep="last").set_index("variant")["median_ms"]
    ratio = rows["variant"].map(eager).astype(float) / rows["median_ms"].where(rows.index.isin(ok.index)).astype(float)
    return rows.assign(eager_ratio=ratio)


def shape_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Return (title, rows with eager_ratio) per case shape without its runtime; per machine and results file
    too when the frame holds several (their times never share a table)."""
    places = [column for column in ("source", MACHINE) if column in frame and frame[column].nunique(dropna=False) > 1]
    groups = []
    for _, rows in frame.groupby([*places, *(column for column in shape_key() if column != "runtime")], sort=True, dropna=False):
        title = shape_title(rows.iloc[0], without=("runtime",))
        if places:  # the facet names machine and run; without it the host does
            where = rows["facet"].iloc[0] if "facet" in rows else rows[MACHINE].iloc[0]
            title = f"{' · '.join(str(where).splitlines())}\n{title}"
        groups.append((title, with_eager_ratio(rows)))
    return groups


def _cell(rows: pd.DataFrame) -> str:
    """Return one variant x runtime cell: '0.312 (4.1×)', '0.312' (no eager time to compare), a status, or ''."""
    if rows.empty:
        return ""  # not swept under this runtime
    row = rows.iloc[-1]
    if row["status"] != "ok":
        return not_run_text(row)
    ratio = row["eager_ratio"]
    return median_text(row) + (f" ({times(ratio)})" if row["runtime"] != "eager" and pd.notna(ratio) else "")


def summary_line(rows: pd.DataFrame, runtimes: list[str]) -> str:
    """Return one line on a table: the variants that ran ok under every runtime, and the fastest ok cell."""
    ok = rows[(rows["status"] == "ok") & (rows["median_ms"] > 0)]
    everywhere = [v for v in variant_order(rows["variant"]) if set(runtimes) <= set(ok.loc[ok["variant"] == v, "runtime"])]
    line = "runs everywhere: " + (", ".join(everywhere) or "none")
    if ok.empty:
        return line + "; nothing ran ok."
    best = ok.loc[ok["median_ms"].astype(float).idxmin()]
    return line + f"; fastest: {best['variant']} under {best['runtime']}, {milliseconds(best['median_ms'])} ms."


def runtime_tables(frame: pd.DataFrame) -> list[RuntimeTable]:
    """Return a table per case shape (without its runtime) of each variant's median under each runtime swept there,
    with its speed-up over the variant's eager row, or why it did not run ([] when the frame holds one runtime).

    frame: one row per case (bench.analysis.frames.load_results: the latest run, median over rounds).
    """
    if len(runtimes_present(frame)) < 2:
        return []
    tables = []
    for title, rows in shape_groups(frame):
        runtimes = runtimes_present(rows)  # a column per runtime swept at this shape (backward: no inference-only ones)
        cells = []
        for variant in variant_order(rows["variant"]):
            mine = rows[rows["variant"] == variant]
            family = mine["family"].iloc[0]
            cells.append([f"{variant} ({family})", *(_cell(mine[mine["runtime"] == r]) for r in runtimes)])
        tables.append(RuntimeTable(title.replace("\n", " · "), ["variant (family)", *runtimes], cells,
                                   summary_line(rows, runtimes)))
    return tables


def runtime_section(frame: pd.DataFrame) -> list[Block]:
    """Return the report's section on runtimes: its intro, then per case shape its table and summary line
    ([] when the frame holds one runtime)."""
    tables = runtime_tables(frame)
    if not tables:
        return []
    parts: list[Block] = [HEADING, INTRO]
    for table in tables:
        parts += [f"**{table.title}**", Table(table.header, table.rows), table.summary]
    return parts
