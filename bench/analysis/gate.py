"""Regression gate: compare a current results CSV with a baseline, case by case, and decide.

Why this way: timings move with the machine (another host, a busy neighbour), so by default
each median is divided by the reference variant's median for the same case *in the same file*
(one run, or several appended runs of which the fastest per case counts: load only ever adds
time) and only those ratios are compared; a baseline recorded elsewhere still compares. A change
counts only when it is larger than the tolerance *and* lies outside the spread measured in
the timings involved: the interquartile intervals of the baseline and current values must
not overlap. To first order that is: the relative change exceeds half the sum of the
relative IQRs (IQR / median) of the four medians (current row, current reference, baseline
row, baseline reference; two in --absolute mode). The tolerance covers what no IQR sees:
drift between runs on a shared machine. See docs/gate.md.

Everything here is pure (DataFrames in, a DataFrame or text out); reading the CSVs and printing
the table are the `gate` command's (bench/cli/gate.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from bench.results.machines import machines
from bench.results.selection import REFERENCE_VARIANT, case_key, case_label, fastest_per_case, shape_key

VERDICTS = ("regression", "improvement", "unchanged", "new", "missing", "not-comparable")


class GateError(ValueError):
    """Input the gate cannot judge (e.g. no case in common); reported as one line, exit status 2."""


@dataclass(frozen=True)
class GateSettings:
    """How the gate decides: the tolerated relative slowdown and the normalising reference (None: absolute)."""

    tolerance: float = 0.15
    reference: str | None = REFERENCE_VARIANT


@dataclass(frozen=True)
class _Side:
    """One side (baseline or current) of a case: its value to compare and its relative spread."""

    value: float  # median_ms, or median_ms / reference median_ms
    spread: float  # relative half-width of value's interquartile interval (first order)
    median_ms: float
    note: str = ""


def _half_rel_iqr(row: pd.Series) -> float:
    iqr = row["iqr_ms"]
    return 0.0 if pd.isna(iqr) else float(iqr) / float(row["median_ms"]) / 2


def _usable(row: pd.Series | None) -> bool:
    return row is not None and row["status"] == "ok" and pd.notna(row["median_ms"]) and row["median_ms"] > 0


def _side(row: pd.Series, ref: pd.Series | None, settings: GateSettings, label: str) -> _Side | str:
    """Return the side's value and spread, or why it cannot be compared."""
    if not _usable(row):
        return f"{label} status {row['status']}" if row["status"] != "ok" else f"{label} has no median"
    if settings.reference is None:
        return _Side(float(row["median_ms"]), _half_rel_iqr(row), float(row["median_ms"]))
    if not _usable(ref):
        return f"no ok reference {settings.reference!r} in {label}"
    value = float(row["median_ms"]) / float(ref["median_ms"])
    return _Side(value, _half_rel_iqr(row) + _half_rel_iqr(ref), float(row["median_ms"]))


def judge(change: float, threshold: float) -> str:
    """Return the verdict for a ratio current/baseline (1.0 = same) against a relative threshold."""
    if change > 1 + threshold:
        return "regression"
    if 1 / change > 1 + threshold:
        return "improvement"
    return "unchanged"


def _compare_case(base: _Side, cur: _Side, settings: GateSettings, is_reference: bool) -> dict[str, object]:
    change = cur.value / base.value
    noise = base.spread + cur.spread  # beyond this the two interquartile intervals do not overlap
    threshold = max(settings.tolerance, noise)
    verdict, note = judge(change, threshold), ""
    if is_reference:
        raw = cur.median_ms / base.median_ms - 1
        verdict = "unchanged"  # its ratio to itself is 1 in both runs
        note = f"reference: 1 by construction; raw change {raw:+.0%} is gated only with --absolute"
    elif verdict == "unchanged" and change - 1 > settings.tolerance:
        note = f"slower by {change - 1:.0%} but within the measured spread ({noise:.0%})"
    elif verdict in ("regression", "improvement") and (change > 1) != (cur.median_ms > base.median_ms):
        note = (f"its own ms went {'down' if change > 1 else 'up'}, but relative to {settings.reference!r} of the same "
                f"file it is {'slower' if change > 1 else 'faster'}: the reference moved more")
    return {"change": change - 1, "noise": noise, "threshold": threshold, "verdict": verdict, "note": note}


def _lookup(frame: pd.DataFrame) -> dict[tuple, pd.Series]:
    return {tuple(row[c] for c in case_key()): row for _, row in frame.iterrows()}


def _reference_row(rows: dict[tuple, pd.Series], key: tuple, reference: str | None) -> pd.Series | None:
    if reference is None:
        return None
    return rows.get((reference, *key[1:]))


def compare(baseline: pd.DataFrame, current: pd.DataFrame, settings: GateSettings = GateSettings()) -> pd.DataFrame:
    """Return one row per case key of either side: the case, both medians, the change, its threshold and the verdict.

    Each side holds the rows of one machine (host): rows of one case from two hosts are two
    measurements, so a merged file is judged machine by machine (bench/analysis/gate_pairs.py).
    """
    check_settings(settings)
    for side, frame in (("baseline", baseline), ("current", current)):
        hosts = machines(frame)
        if len(hosts) > 1:
            raise GateError(f"the {side} results hold rows of {len(hosts)} machines ({', '.join(hosts)}): judge them "
                            "per machine (gate_pairs.judge)")
    base_rows, cur_rows = _lookup(fastest_per_case(baseline)), _lookup(fastest_per_case(current))
    if not set(base_rows) & set(cur_rows):
        raise GateError("the baseline and the current results have no case in common (compare the same preset)")
    out = []
    for key in list(base_rows) + [k for k in cur_rows if k not in base_rows]:
        record: dict[str, object] = dict(zip(case_key(), key))
        base, cur = base_rows.get(key), cur_rows.get(key)
        record["baseline_ms"] = base["median_ms"] if base is not None else math.nan
        record["current_ms"] = cur["median_ms"] if cur is not None else math.nan
        record.update(_decide(key, base, cur, base_rows, cur_rows, settings))
        out.append(record)
    columns = [*case_key(), "baseline_ms", "current_ms", "change", "noise", "threshold", "verdict", "note"]
    return pd.DataFrame(out).reindex(columns=columns)


def check_settings(settings: GateSettings) -> None:
    """Raise GateError when the tolerance is not a non-negative number."""
    if settings.tolerance < 0 or not math.isfinite(settings.tolerance):
        raise GateError(f"bad tolerance {settings.tolerance}: expected a non-negative fraction, e.g. 0.15")


def _decide(key, base, cur, base_rows, cur_rows, settings: GateSettings) -> dict[str, object]:
    """Return change, noise, threshold, verdict and note for one case key."""
    if base is None:
        return {"verdict": "new", "note": "not in the baseline"}
    if cur is None:
        return {"verdict": "missing", "note": "not in the current results"}
    base_side = _side(base, _reference_row(base_rows, key, settings.reference), settings, "baseline")
    cur_side = _side(cur, _reference_row(cur_rows, key, settings.reference), settings, "current")
    reasons = [side for side in (base_side, cur_side) if isinstance(side, str)]
    if reasons:
        return {"verdict": "not-comparable", "note": "; ".join(reasons)}
    return _compare_case(base_side, cur_side, settings, is_reference=key[0] == settings.reference)


def exit_status(verdicts: pd.DataFrame) -> int:
    """Return 1 when any case regressed, else 0; regressions of rows marked `advisory` (other hardware) do not count."""
    regressed = verdicts["verdict"] == "regression"
    if "advisory" in verdicts:
        regressed &= ~verdicts["advisory"].astype(bool)
    return int(regressed.any())


def counts(verdicts: pd.DataFrame) -> dict[str, int]:
    """Return how many cases got each verdict (every verdict listed, zeros included)."""
    found = verdicts["verdict"].value_counts()
    return {verdict: int(found.get(verdict, 0)) for verdict in VERDICTS}


def mode_line(settings: GateSettings) -> str:
    """Return one sentence saying how the gate compared and what the columns mean."""
    rule = f"slower by more than the tolerance {settings.tolerance:.0%} and than half the summed relative IQRs"
    if settings.reference is None:
        return f"baseline ms / current ms: fastest run's median per call; change: their ratio minus 1; a regression is {rule} (2 medians)"
    return (f"baseline ms / current ms: the row's own median per call (fastest run); change: that median divided by "
            f"{settings.reference!r}'s of the same file and case, current over baseline, minus 1, so ms and change can move apart; "
            f"a regression is {rule} (4 medians); {settings.reference!r} itself is unchanged by construction (use --absolute to gate it)")


def several_machines(verdicts: pd.DataFrame) -> bool:
    """Return whether the verdicts are of several machines (then tables get a `machine` column)."""
    return "machine" in verdicts and verdicts["machine"].nunique() > 1


def headers(verdicts: pd.DataFrame) -> tuple[str, ...]:
    """Return the table headers of the verdicts: HEADERS, led by `machine` when they are of several machines."""
    return ("machine", *HEADERS) if several_machines(verdicts) else HEADERS


def table_cells(row: pd.Series, with_machine: bool = False) -> list[str]:
    """Return the text cells of one verdict row, in HEADERS order (led by its machine when with_machine)."""
    number = lambda value, fmt: "-" if pd.isna(value) else format(value, fmt)  # noqa: E731
    machine_cell = [f"{row['machine']}{' (advisory)' if bool(row.get('advisory', False)) else ''}"] if with_machine else []
    return [
        *machine_cell, case_label(row), str(row["variant"]), number(row["baseline_ms"], ".3f"), number(row["current_ms"], ".3f"),
        number(row["change"], "+.1%"), number(row["threshold"], ".0%"), str(row["verdict"]), str(row["note"] or ""),
    ]


HEADERS = ("case", "variant", "baseline ms", "current ms", "change", "threshold", "verdict", "note")
RIGHT_ALIGNED = frozenset(h for h in HEADERS if h.endswith(("ms", "change", "threshold")))


def ordered_verdicts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Return the verdicts sorted for reading: regressions first, then by machine (when there is one) and case."""
    rank = {verdict: i for i, verdict in enumerate(VERDICTS)}
    keys = ["_rank", *(["machine"] if "machine" in verdicts else []), *shape_key(), "variant"]
    return verdicts.assign(_rank=verdicts["verdict"].map(rank)).sort_values(keys, kind="stable")


def summary_line(verdicts: pd.DataFrame) -> str:
    """Return e.g. '**1 regression**, 13 unchanged' (markdown; the verdicts that occur)."""
    return ", ".join(f"**{n} {verdict}**" if verdict == "regression" else f"{n} {verdict}"
                     for verdict, n in counts(verdicts).items() if n)


def markdown_text(text: str) -> str:
    """Return text safe in markdown and in a table cell: no column break, no HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;")


def markdown_table(headers: tuple[str, ...], right_aligned: frozenset[str], rows: list[list[str]]) -> list[str]:
    """Return the lines of a markdown table, every cell escaped."""
    return ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if h in right_aligned else "---" for h in headers) + "|",
            *("| " + " | ".join(markdown_text(text) for text in row) + " |" for row in rows)]


def markdown(verdicts: pd.DataFrame, settings: GateSettings, advisory: bool = False, compared: str = "") -> str:
    """Return the verdicts as a markdown report (what was compared, a summary line, then a table), fit for a PR comment."""
    outcome = "pass, advisory" if advisory else "FAIL" if exit_status(verdicts) else "pass"
    rows = [table_cells(row, several_machines(verdicts)) for _, row in ordered_verdicts(verdicts).iterrows()]
    lines = [f"### Regression gate: {outcome}", "", *([markdown_text(compared), ""] if compared else []), summary_line(verdicts), "",
             f"_{mode_line(settings)}._", "", *markdown_table(headers(verdicts), RIGHT_ALIGNED, rows)]
    return "\n".join(lines) + "\n"


def threads_note(baseline: pd.DataFrame, current: pd.DataFrame, where: str = "") -> str:
    """Return a warning when the two files (of machine `where`, if named) were measured with other thread counts, else ''."""
    threads = [sorted({int(t) for t in frame["threads"].dropna()}) for frame in (baseline, current)]
    if threads[0] != threads[1]:
        return (f"note: {where + ': ' if where else ''}thread counts differ (baseline {threads[0]}, current {threads[1]}): "
                "timings may not compare")
    return ""


def machine(frame: pd.DataFrame) -> str:
    """Return what a results file was measured on: its distinct device names, joined."""
    return " + ".join(sorted(set(frame["device_name"].dropna().astype(str)))) or "unknown device"


def baseline_file_name(frame: pd.DataFrame) -> str:
    """Return the file name of a CI baseline measured on frame's machine, e.g. ci-amd-epyc-family-26-model-2-2-cores-2-threads.csv."""
    return "ci-" + re.sub(r"[^a-z0-9]+", "-", machine(frame).lower()).strip("-") + ".csv"


def machine_note(baseline: pd.DataFrame, current: pd.DataFrame, where: str = "") -> str:
    """Return why the verdicts (of machine `where`, if named) are only advisory (another machine's baseline), else ''."""
    if machine(baseline) == machine(current):
        return ""
    if where:
        return (f"note: {where}: no baseline from its hardware ({machine(current)}), compared with one measured on "
                f"{machine(baseline)}: relative speeds differ between processors, so its regressions are advisory "
                f"(they do not fail the gate); record a baseline on it (scripts/ci_gate.sh --refresh)")
    return (f"note: baseline measured on {machine(baseline)}, current on {machine(current)}: relative speeds "
            "differ between processors (vector width, denormal handling), so regressions are advisory here "
            "(exit 0); record a baseline on this machine (scripts/ci_gate.sh --refresh)")


