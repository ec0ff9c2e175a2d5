"""Which machine a row was measured on: a file merged from several machines (a cluster run) holds rows of each.

A machine is a host: one host's rows may span its devices (cpu and cuda rows have other
device names). Rows of one case from two hosts are two measurements, never rounds of one.
"""

from __future__ import annotations

import pandas as pd

from bench.results.selection import MACHINE  # the column that names a row's machine (its host)

UNKNOWN = "unknown host"


def machine_of(frame: pd.DataFrame) -> pd.Series:
    """Return each row's machine (its host; UNKNOWN where the file or frame has none)."""
    if MACHINE not in frame:
        return pd.Series(UNKNOWN, index=frame.index, dtype="string")
    return frame[MACHINE].astype("string").fillna(UNKNOWN)


def machines(frame: pd.DataFrame) -> list[str]:
    """Return the machines of the rows, in order of first appearance."""
    return list(dict.fromkeys(machine_of(frame)))


def per_machine(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Return (machine, its rows) for every machine of the frame, in order of first appearance."""
    hosts = machine_of(frame)
    return [(host, frame[hosts == host]) for host in machines(frame)]


def machine_title(rows: pd.DataFrame) -> str:
    """Return how one machine's rows name it: host and device models, e.g. 'node7 (NVIDIA H100, AMD EPYC)'."""
    names = ", ".join(dict.fromkeys(rows["device_name"].dropna().astype(str))) or "unknown device"
    return f"{machines(rows)[0] if len(rows) else UNKNOWN} ({names})"
