"""Merge results CSVs from several machines or shards into one file: schema check, migration, de-duplication."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.results.machines import machines
from bench.results.samples import key_mask, load_samples, samples_path, write_samples
from bench.results.schema import SCHEMA_VERSION, ResultsError, columns, dtypes
from bench.results.selection import row_key
from bench.results.store import load, locked, replace_text, rows_csv


@dataclass
class Merged:
    frame: pd.DataFrame
    files: list[Path]
    duplicates: int
    notes: list[str]


def expand(paths: list[Path]) -> list[Path]:
    """Return the CSV files the arguments name: a file as is, a directory's *.csv (not its subfolders), each once."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.csv"))
            if not found:
                raise ResultsError(f"no .csv file in the directory {path}")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise ResultsError(f"no results file or directory at {path}")
    unique = {file.resolve(): file for file in files}
    return list(unique.values())


def check_schema(frame: pd.DataFrame, path: Path) -> None:
    """Refuse a CSV this version cannot merge without loss: unknown columns, or a newer schema version."""
    unknown = [column for column in frame.columns if column not in dtypes()]
    if unknown:
        raise ResultsError(f"{path} has columns this version does not know ({', '.join(unknown[:3])}): it was written by a "
                           "newer version of the harness or is not a results file; merge it with that version")
    versions = frame["schema_version"].dropna()
    if len(versions) and int(versions.max()) > SCHEMA_VERSION:
        raise ResultsError(f"{path} has schema version {int(versions.max())}, newer than this version's {SCHEMA_VERSION}: "
                           "merge it with the newer version of the harness")


def merge_files(paths: list[Path]) -> Merged:
    """Load every CSV (older schemas gain the new columns, empty), refuse incompatible ones, drop duplicate rows."""
    files = expand(paths)
    frames, notes = [], []
    for path in files:
        frame = load(path)
        check_schema(frame, path)
        if frame.attrs.get("partial_last_line"):
            notes.append(f"{path} ended with a partial row (a killed writer): it is left out")
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns()))
    frame = frame.astype(dtypes())
    # Two rows of one row_key are one measurement given twice (a file passed twice, a shard file beside an
    # earlier merge of it): the later one is kept. Rounds of a run and other hosts are kept apart.
    ordered = frame.sort_values("timestamp", kind="stable", na_position="first")
    unique = ordered.drop_duplicates(subset=list(row_key()), keep="last").sort_index()
    return Merged(unique.reset_index(drop=True), files, len(frame) - len(unique), notes)


def write_merged(merged: Merged, out: Path) -> None:
    """Write the merged rows to `out`, replacing it atomically (its own rows are among the inputs when it exists), and
    beside it the block times of those rows that the inputs' samples files hold."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = merged.frame[list(columns())].astype(object).to_dict("records")
    samples = merged_samples(merged)
    with locked(out):
        replace_text(out, rows_csv(rows, header=True))
    if len(samples) or samples_path(out).exists():
        write_samples(out, samples)


def merged_samples(merged: Merged) -> pd.DataFrame:
    """Return the block times of the merged rows: each row's from one input (a row given twice keeps one set)."""
    frames = [load_samples(path) for path in merged.files]
    samples = pd.concat(frames, ignore_index=True).drop_duplicates(subset=[*row_key(), "block"], keep="last")
    return samples[key_mask(samples, merged.frame)]


def summary(merged: Merged, out: Path) -> str:
    """Return one line: how many rows from how many files and machines went where."""
    hosts = machines(merged.frame)
    dropped = f", {merged.duplicates} duplicate row(s) dropped" if merged.duplicates else ""
    return (f"merged {len(merged.frame)} rows from {len(merged.files)} file(s), {len(hosts)} machine(s) "
            f"({', '.join(hosts)}){dropped} -> {out}")
