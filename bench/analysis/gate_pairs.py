"""The file-mode gate across machines: pair each machine of the current results with a baseline machine, judge each pair.

Why per machine: a file merged from several machines (a cluster run) holds rows of one case from
several hosts, and a ratio to the reference variant only carries over between processors of one
kind (docs/gate.md). So each current machine (host) is judged against one baseline machine:
the same host on the same hardware, else another host with the same device names (the same
kind of hardware), else the same host on other hardware, else the first one found. Only the
first two count; against the others the verdicts are advisory, as for a single file measured
elsewhere. Pure: DataFrames in, verdicts and note lines out.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.analysis.gate import GateError, GateSettings, check_settings, compare, machine, machine_note, threads_note
from bench.results.machines import UNKNOWN, per_machine


@dataclass(frozen=True)
class Candidate:
    """One machine of the baseline: the file its rows come from, its host, its rows, and whether the file holds others."""

    file: str
    host: str
    rows: pd.DataFrame
    shared: bool = False

    @property
    def label(self) -> str:
        """Return how the gate names this baseline: its file, and its host when the file holds several."""
        return f"{self.file}, host {self.host}" if self.shared else self.file


@dataclass(frozen=True)
class Pair:
    """A machine (host) of the current results and the baseline machine it is judged against."""

    host: str
    current: pd.DataFrame
    baseline: Candidate

    @property
    def advisory(self) -> bool:
        """Return whether the baseline was measured on other hardware: then its regressions do not fail the gate."""
        return machine(self.baseline.rows) != machine(self.current)


def _machines_or_all(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    # A file without rows still takes part, so that the gate says what is missing (e.g. no case in common).
    return per_machine(frame) or [(UNKNOWN, frame)]


def candidates(files: list[tuple[str, pd.DataFrame]]) -> list[Candidate]:
    """Return every machine of the baseline files, given as (name, rows), in file order."""
    found = []
    for name, frame in files:
        parts = _machines_or_all(frame)
        found += [Candidate(name, host, rows, shared=len(parts) > 1) for host, rows in parts]
    return found


def _rank(host: str, rows: pd.DataFrame, candidate: Candidate) -> int:
    same_kind, same_host = machine(candidate.rows) == machine(rows), candidate.host == host
    return (0 if same_host else 1) if same_kind else (2 if same_host else 3)


def best_baseline(host: str, rows: pd.DataFrame, found: list[Candidate]) -> Candidate:
    """Return the baseline machine for one current machine: same host and hardware, else same hardware, else same host,
    else the first (ties: the first found)."""
    if not found:
        raise GateError("the baseline holds no results")
    return min(found, key=lambda candidate: _rank(host, rows, candidate))


def pair_machines(current: pd.DataFrame, found: list[Candidate]) -> list[Pair]:
    """Return one pair per machine of the current results, each with its best baseline machine."""
    return [Pair(host, rows, best_baseline(host, rows, found)) for host, rows in _machines_or_all(current)]


def judge(pairs: list[Pair], settings: GateSettings = GateSettings()) -> tuple[pd.DataFrame, list[str]]:
    """Return the verdicts of every pair (compare(), plus `machine` and `advisory` columns) and the notes to print.

    With one pair the notes are those of a one-file gate. With several, a pair without a case in
    common is left out with a note (the others are still judged); none judged is a GateError.
    """
    check_settings(settings)
    several = len(pairs) > 1
    verdicts, notes = [], []
    for pair in pairs:
        where = pair.host if several else ""
        try:
            found = compare(pair.baseline.rows, pair.current, settings)
        except GateError as error:
            if not several:
                raise
            notes.append(f"note: {pair.host}: not judged against {pair.baseline.label}: {error}")
            continue
        verdicts.append(found.assign(machine=pair.host, advisory=pair.advisory))
        notes += [note for note in (threads_note(pair.baseline.rows, pair.current, where),
                                    machine_note(pair.baseline.rows, pair.current, where)) if note]
    if not verdicts:
        raise GateError("no machine of the current results has a case in common with the baseline (compare the same preset)")
    return pd.concat(verdicts, ignore_index=True), notes


def compared_text(pairs: list[Pair], current_file: str) -> str:
    """Return what was compared: one line for one machine, else one bulleted line per machine."""
    if len(pairs) == 1:
        pair = pairs[0]
        return f"baseline: {pair.baseline.label} ({machine(pair.baseline.rows)}); current: {current_file} ({machine(pair.current)})"
    return "\n".join(f"- {pair.host} ({machine(pair.current)}) in {current_file}: baseline {pair.baseline.label} "
                     f"({machine(pair.baseline.rows)}){', advisory' if pair.advisory else ''}" for pair in pairs)


def outcome_line(verdicts: pd.DataFrame, pairs: list[Pair]) -> str:
    """Return the gate's last line: pass or FAIL, with the regressions counted (per machine when there are several)."""
    regressed = verdicts[verdicts["verdict"] == "regression"]
    binding = regressed[~regressed["advisory"].astype(bool)]
    if len(pairs) == 1:
        advisory = pairs[0].advisory
        outcome = "pass, advisory" if advisory else "FAIL" if len(binding) else "pass"
        return f"gate: {outcome} ({len(regressed)} regression(s){' against another machine' if advisory else ''})"
    hosts = lambda rows: ", ".join(dict.fromkeys(rows["machine"]))  # noqa: E731
    detail = [f"{len(binding)} regression(s)" + (f" on {hosts(binding)}" if len(binding) else "")]
    if len(regressed) > len(binding):
        detail.append(f"{len(regressed) - len(binding)} advisory on {hosts(regressed[regressed['advisory'].astype(bool)])}")
    outcome = "FAIL" if len(binding) else "pass, advisory" if all(pair.advisory for pair in pairs) else "pass"
    return f"gate: {outcome} ({len(pairs)} machines: {'; '.join(detail)})"
