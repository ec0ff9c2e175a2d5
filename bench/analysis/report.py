"""The markdown report of a results frame: latency, speed-up and runtime tables, machine, accuracy, figures, semantics.

A file merged from several machines (hosts) gets an overview of the machines and one section per
machine, computed from that machine's rows only: timings of two machines never share a table.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from bench.analysis import models, verdict
from bench.analysis.blocks import Block, Bullets, Callout, Figure, Table
from bench.analysis.frames import facet_labels, not_ok_lines, panel_keys, resolution_ticks, run_label
from bench.analysis.labels import axis_text, variant_order
from bench.analysis.runtimes import runtime_section
from bench.analysis.summary import add_speedup, median_text, milliseconds, noise_line, times, with_speedup
from bench.results.machines import machine_of, machine_title, machines, per_machine
from bench.results.selection import NOISE_THRESHOLD, REFERENCE_VARIANT, case_key, latest_per_case

# What each semantics family does at the image border (the only place the local ones differ).
BORDER_SEMANTICS = {
    "local-zero-pad": "k×k square centred on the query; pixels outside the image are zero keys and zero values "
                      "that still take part in the softmax (a zero logit), so border outputs are pulled towards 0.",
    "local-masked": "the same square; pixels outside the image are left out of the softmax, so a border query "
                    "attends to fewer than k×k keys.",
    "local-deformed": "Slide attention's deformed shifting: the zero-padded square's keys and values plus a learned "
                      "depthwise k×k mix (zero padding), merged into the shift kernels for inference.",
    "neighborhood": "NATTEN: the k×k window is shifted inward at the border, so every query attends to exactly "
                    "k×k real pixels.",
    "window": "Swin W-MSA: non-overlapping w×w windows (w = kernel size); a query attends only inside its own "
              "window. A resolution that w does not divide is a skipped case.",
    "window-shifted": "Swin SW-MSA: windows displaced by w/2 (cyclic shift); the mask stops attention across the "
                      "wrap-around, so border windows are partial.",
}

FINGERPRINT = ("host", "device_name", "cpu", "gpu", "threads", "allocator", "torch_version", "natten_version", "git_sha")


def markdown_table(header: list[str], rows: list[list[str]], numbers: bool = True) -> str:
    """Return a GitHub markdown table; with `numbers`, the columns after the first are right-aligned."""
    align = [":--", *[("--:" if numbers else ":--")] * (len(header) - 1)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    """Return a table cell's text: a `|` or a line break from a file must not end the cell or the row."""
    return " ".join(str(value).splitlines()).replace("|", "\\|")


def _groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Return (heading, rows) per table: one per device/dtype/pass/batch (and any varied extra axis)."""
    keys = [*(["device"] if frame["device"].nunique() > 1 else []), *panel_keys(frame), "batch"]  # cpu+cuda: one each
    groups = []
    for values, rows in frame.groupby(keys, sort=True, dropna=False):
        parts = [axis_text(k, v) if k not in ("device", "dtype", "pass", "batch") else f"{k} {v}" for k, v in zip(keys, values)]
        groups.append((", ".join(parts), rows))
    return groups


def _cell_ms(row: pd.Series) -> str:
    return median_text(row) if row["status"] == "ok" else row["status"]


def _cell_speedup(row: pd.Series) -> str:
    if row["status"] != "ok":
        return row["status"]
    return times(row["speedup"]) if pd.notna(row["speedup"]) else "-"


def pivot_table(rows: pd.DataFrame, cell) -> Table:
    """Return a table variant x resolution whose cells are cell(row)."""
    ticks = resolution_ticks(rows)
    table = []
    for variant in variant_order(rows["variant"]):
        mine = rows[rows["variant"] == variant].set_index("pixels")
        family = mine["family"].iloc[0]
        table.append([f"{variant} ({family})", *(cell(mine.loc[p]) if p in mine.index else "" for p in ticks)])
    return Table(["variant (family)", *(label.replace("\n", " ") for label in ticks.values())], table)


def fingerprint_table(frame: pd.DataFrame) -> Table:
    """Return the machine fingerprint of the rows as a two-column table."""
    rows = [[column, ", ".join(str(v) for v in dict.fromkeys(frame[column].dropna())) or "-"] for column in FINGERPRINT]
    rows.append(["runs", ", ".join(sorted(frame["run_id"].dropna().unique()))])
    rows.append(["measured", f"{frame['timestamp'].min()} to {frame['timestamp'].max()}"])
    rows.append(["rows", ", ".join(f"{n} {s}" for s, n in frame["status"].value_counts().items())])
    return Table(["", "value"], rows, numbers=False)


def accuracy_table(frame: pd.DataFrame, column: str = "max_abs_err") -> Table:
    """Return the largest value of an error column (max_abs_err, grad_max_abs_err) per variant and dtype."""
    worst = frame.pivot_table(index="variant", columns="dtype", values=column, aggfunc="max")
    rows = [[v, *(f"{worst.loc[v, d]:.1e}" if v in worst.index and pd.notna(worst.loc[v, d]) else "-" for d in worst.columns)]
            for v in variant_order(frame["variant"])]
    return Table(["variant", *worst.columns], rows)


def compare_runs(first: pd.DataFrame, second: pd.DataFrame, reference: str = REFERENCE_VARIANT) -> pd.DataFrame:
    """Return one row per case ok in both: medians, time ratio second/first, and each one's speed-up vs reference.

    Raw times compare runs on one machine; across machines compare the speed-ups, each
    measured against the reference within its own run.
    """
    def ok_latest(frame: pd.DataFrame) -> pd.DataFrame:
        measured = add_speedup(latest_per_case(frame), reference)
        return measured[measured["status"] == "ok"][[*case_key(), "median_ms", "speedup"]]

    merged = ok_latest(first).merge(ok_latest(second), on=list(case_key()), suffixes=("_first", "_second"))
    merged["time_ratio"] = merged["median_ms_second"] / merged["median_ms_first"]
    return merged


def _link(path: Path, md_path: Path) -> str:
    # Relative when the report and the figure share a tree (the usual results/ + plots/), else absolute.
    path, folder = path.resolve(), md_path.resolve().parent
    return os.path.relpath(path, folder) if os.path.commonpath([path, folder]) != "/" else str(path)


def models_section(rows: pd.DataFrame) -> list[Block]:
    """Return the report's blocks on whole models (run_bench.py models): their table and the paper's claims."""
    table = models.summary(rows)
    cells = [[r.config, r.device, r.runtime, r.dtype, str(r.batch), r.pass_, milliseconds(r.ms), f"{r.images_per_s:.1f}",
              f"{r.gflop_per_image:.2f}", f"{r.params_m:.2f}", f"{r.max_abs_err:.2g}", r.rounds_ok]
             for r in table.rename(columns={"pass": "pass_"}).itertuples(index=False)]
    header = ["config", "device", "runtime", "dtype", "batch", "pass", "ms", "images/s", "GFLOP/image", "params (M)",
              "max_abs_err", "ok rounds"]
    return ["## Model level", "Medians over rounds; GFLOP as torch.utils.flop_counter counts them (a multiply-add is 2, "
            "the paper's 4.5 G for Swin-T counts it as 1).", Table(header, cells),
            Bullets(models.lines(models.verdicts(rows)))]


def verdict_section(rows: pd.DataFrame, where: str = "this machine") -> list[Block]:
    """Return the report's verdict: the fastest exact variant per family, Slide vs Im2Col with intervals, the claim."""
    fastest = verdict.fastest_per_family(rows)
    cells = [[r.group, r.family, r.variant, milliseconds(r.median_ms), r.runner_up or "-"] for r in fastest.itertuples(index=False)]
    claim = verdict.slide_vs_im2col(rows)
    pairs = [[r.group, f"{r.speedup:.2f}x", f"{r.low:.2f}-{r.high:.2f}", r.verdict] for r in claim.itertuples(index=False)]
    return ["## Verdict", Callout(verdict.claim_line(claim, where)),
            "Fastest variant of each family among the rows that passed the oracle check:",
            Table(["case group", "family", "fastest", "ms", "next fastest"], cells, numbers=False),
            "Slide vs Im2Col: Im2Col ms / Slide ms (above 1: Slide is faster)"
            + (f"; interval: {'; '.join(claim['basis'].unique())}" if len(claim) else "") + ".",
            Table(["case group", "Slide's speed-up", "interval", "verdict"], pairs, numbers=False)]


def blocks(frame: pd.DataFrame, csv_path: Path, figures: dict[str, list[Path]],
           model_rows: pd.DataFrame | None = None, all_rounds: pd.DataFrame | None = None) -> list[Block]:
    """Return the report of the rows of one CSV as blocks; whole models in their own section, from model_rows
    (every round; default: frame's own model rows); the verdict from all_rounds (every op row; default: frame).
    Rows of several machines: an overview, then one section per machine (machines_blocks)."""
    own = models.model_rows(frame)
    frame = frame.drop(own.index)
    model_rows = own if model_rows is None else model_rows
    rounds = frame if all_rounds is None else all_rounds.drop(models.model_rows(all_rounds).index)
    if len(dict.fromkeys([*machines(frame), *machines(model_rows)])) > 1:
        return machines_blocks(frame, csv_path, figures, model_rows, rounds)
    if frame.empty:
        return [f"# Local attention benchmark: {run_label(model_rows)}", f"Results: `{csv_path}`.",
                "## Machine", fingerprint_table(model_rows), *models_section(model_rows)]
    return [f"# Local attention benchmark: {run_label(frame)}",
            f"Results: `{csv_path}`. Median latency of one call; `~` marks a noisy cell (IQR above "
            f"{NOISE_THRESHOLD:.0%} of the median). Compare speeds as ratios measured in the same run.",
            *measured_blocks(frame, rounds), *figure_blocks(figures), *border_blocks(frame),
            *(models_section(model_rows) if len(model_rows) else [])]


def measured_blocks(frame: pd.DataFrame, rounds: pd.DataFrame, where: str = "this machine") -> list[Block]:
    """Return the sections on one machine's op rows: fingerprint, noise, verdict (from rounds), latency, speed-up,
    accuracy and the cases not measured."""
    data = with_speedup(frame, REFERENCE_VARIANT) if (frame["variant"] == REFERENCE_VARIANT).any() else frame.assign(speedup=float("nan"))
    parts: list[Block] = ["## Machine", fingerprint_table(frame), noise_line(frame) + ".", *verdict_section(rounds, where),
                          "## Median latency (ms)"]
    for heading, rows in _groups(data):
        parts += [f"**{heading}**", pivot_table(rows, _cell_ms)]
    parts += [f"## Speed-up relative to {REFERENCE_VARIANT} (higher is faster)"]
    for heading, rows in _groups(data):
        parts += [f"**{heading}**", pivot_table(rows, _cell_speedup)]
    parts += [*runtime_section(frame), "## Accuracy: largest max |output - float64 oracle|", accuracy_table(frame)]
    if frame.get("grad_max_abs_err", pd.Series(dtype=float)).notna().any():
        parts += ["## Gradients: largest max |dq, dk or dv - float64 oracle's| (forward_backward rows)",
                  accuracy_table(frame, "grad_max_abs_err")]
    missing = not_ok_lines(frame, limit=50)
    return parts + ["## Cases not measured", Bullets(missing) if missing else "None: every case ran."]


def figure_blocks(figures: dict[str, list[Path]]) -> list[Block]:
    """Return the figures section: one figure per name (its first PNG), or a line saying none were drawn."""
    return ["## Figures", *([Figure(name, paths[0]) for name, paths in figures.items()] or ["No figures drawn."])]


def border_blocks(frame: pd.DataFrame) -> list[Block]:
    """Return the section on the families' border semantics, with the variants of frame in each."""
    present = frame.drop_duplicates("variant").groupby("family")["variant"].apply(list)
    rows = [[family, ", ".join(present.get(family, [])) or "-", text] for family, text in BORDER_SEMANTICS.items()]
    return ["## Border semantics of the families",
            "Speed is comparable across families (the same k×k keys per query); outputs only within a family.",
            Table(["family", "variants here", "at the border"], rows, numbers=False)]


def machines_table(rows: pd.DataFrame) -> Table:
    """Return one line per machine of the rows: its title, devices, threads, rows, ok rows and run ids."""
    joined = lambda values: ", ".join(str(v) for v in dict.fromkeys(values.dropna())) or "-"  # noqa: E731
    cells = [[machine_title(mine), joined(mine["device"]), joined(mine["threads"]), str(len(mine)),
              str(int((mine["status"] == "ok").sum())), ", ".join(sorted(mine["run_id"].dropna().unique())) or "-"]
             for _, mine in per_machine(rows)]
    return Table(["machine", "devices", "threads", "rows", "ok rows", "run ids"], cells, numbers=False)


def machines_blocks(frame: pd.DataFrame, csv_path: Path, figures: dict[str, list[Path]],
                    model_rows: pd.DataFrame, rounds: pd.DataFrame) -> list[Block]:
    """Return the report of rows of several machines: the machines (and the `machines` figure), the other figures
    and the border semantics once, then per machine what a one-machine report shows, from its rows only."""
    everything = pd.concat([rows for rows in (rounds, model_rows) if len(rows)])
    hosts = list(dict.fromkeys([*machines(frame), *machines(model_rows)]))
    parts: list[Block] = [
        f"# Local attention benchmark: {run_label(everything)}",
        f"Results: `{csv_path}`, rows of {len(hosts)} machines. Each machine has its own section below, computed from "
        f"its rows only: compare speeds as ratios within one machine. Median latency of one call; `~` marks a noisy "
        f"cell (IQR above {NOISE_THRESHOLD:.0%} of the median).",
        "## Machines", machines_table(everything),
        *([Figure("machines", figures["machines"][0])] if "machines" in figures else [])]
    others = {name: paths for name, paths in figures.items() if name != "machines"}
    if len(frame):
        parts += [*(figure_blocks(others) if others or not figures else []), *border_blocks(frame)]
    for host in hosts:
        parts += _machine_section(host, frame, model_rows, rounds)
    return parts


def _machine_section(host: str, frame: pd.DataFrame, model_rows: pd.DataFrame, rounds: pd.DataFrame) -> list[Block]:
    mine = lambda rows: rows[machine_of(rows) == host]  # noqa: E731
    ops, model = mine(frame), mine(model_rows)
    body = (measured_blocks(ops.assign(facet=facet_labels(ops)), mine(rounds), host)  # facets named by this machine's rows alone
            if len(ops) else ["## Machine", fingerprint_table(model)])
    body += models_section(model) if len(model) else []
    title = machine_title(pd.concat([rows for rows in (ops, model) if len(rows)]))
    return [f"## {title}", *(f"#{part}" if isinstance(part, str) and part.startswith("#") else part for part in body)]


def render(frame: pd.DataFrame, csv_path: Path, md_path: Path, figures: dict[str, list[Path]],
           model_rows: pd.DataFrame | None = None, all_rounds: pd.DataFrame | None = None) -> str:
    """Return the markdown report of the rows of one CSV (see blocks), its figures linked relative to md_path."""
    return to_markdown(blocks(frame, csv_path, figures, model_rows, all_rounds), md_path)


def to_markdown(parts: list[Block], md_path: Path) -> str:
    """Return blocks as markdown: paragraphs and headings as they are, tables, bullets and figure links."""
    out = []
    for part in parts:
        if isinstance(part, Table):
            out.append(markdown_table(part.header, part.rows, part.numbers))
        elif isinstance(part, Bullets):
            out.append("\n".join(f"- {item}" for item in part.items))
        elif isinstance(part, Figure):
            out.append(f"![{part.name}]({_link(part.path, md_path)})")
        elif isinstance(part, Callout):
            out.append(f"**{part.text}**")
        else:
            out.append(part)
    return "\n\n".join(out) + "\n"
