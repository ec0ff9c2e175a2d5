"""Raw samples: the time of every timed block, kept beside its results CSV (RESULTS.samples.tsv), keyed by the row.

A row's median, IQR and minimum are statistics of these blocks; keeping the blocks lets a later
analysis pool rounds or runs, or test them again, instead of taking medians of medians. One
line per block: the row's key (run, host, round, case) and the block's time per call in ms.
Tab-separated, and not named *.csv, so that no glob for results files picks it up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from bench.axes import fills
from bench.results.schema import SAMPLES_FIELD, ResultsError, dtypes
from bench.results.selection import row_key
from bench.results.store import load as load_rows
from bench.results.store import locked, replace_text, rows_csv


def sample_types() -> dict[str, str]:
    """Return the columns of a samples file and their dtypes: the row's key (a plugin's axes too), the block and its time."""
    return {**{column: dtypes()[column] for column in row_key()}, "round": "Int64", "block": "int64", "block_ms": "float64"}


def samples_path(csv_path: str | Path) -> Path:
    """Return where the samples of a results CSV live: beside it, RESULTS.samples.tsv."""
    return Path(csv_path).with_suffix(".samples.tsv")


def take_samples(row: dict[str, object]) -> list[dict[str, object]]:
    """Remove the block times from a measured row (so it holds columns only); return them as samples lines."""
    key = {column: row.get(column) for column in row_key()}
    return [{**key, "block": index, "block_ms": ms} for index, ms in enumerate(row.pop(SAMPLES_FIELD, None) or [])]


def _text(lines: Iterable[Mapping[str, object]], header: bool) -> str:
    return rows_csv(lines, header, tuple(sample_types()), delimiter="\t")


def append_samples(csv_path: str | Path, lines: Sequence[Mapping[str, object]]) -> None:
    """Append samples lines beside csv_path under the file's lock; a torn last line (a killed writer) is dropped."""
    if not lines:
        return
    path = samples_path(csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path) as handle:
        existing = path.read_text()
        if existing.endswith("\n"):
            handle.write(_text(lines, header=False))
            handle.flush()
            os.fsync(handle.fileno())
            return
        whole = existing[: existing.rfind("\n") + 1]
        replace_text(path, (whole or _text([], header=True)) + _text(lines, header=False))


def load_samples(csv_path: str | Path) -> pd.DataFrame:
    """Return one row per timed block of the results CSV at csv_path (its key columns, block, block_ms); empty when
    the CSV has no samples file (written before samples were kept, or copied without it)."""
    path, types, filled = samples_path(csv_path), sample_types(), fills()
    if not path.exists():
        return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in types.items()})
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as err:
        raise ResultsError(f"{path} is not a samples file: {str(err).splitlines()[0]}") from None
    # Written before an axis existed, a file lacks its column: its lines were measured at the axis's fill value. A column
    # of a plugin's axis that this process lacks is kept as text, as results.load keeps it.
    if not set(types) - set(filled) <= set(frame.columns) or len(set(frame.columns)) != len(frame.columns):
        raise ResultsError(f"{path} is not a samples file: its columns are not {', '.join(types)}")
    unknown = [column for column in frame.columns if column not in types]
    frame = frame.reindex(columns=[*types, *unknown]).fillna({column: str(filled[column]) for column in filled})
    try:
        for column, dtype in types.items():
            numeric = dtype != "string"
            values = pd.to_numeric(frame[column].replace("", None)) if numeric else frame[column].replace("", None)
            frame[column] = values.astype(dtype)
        return frame
    except (ValueError, TypeError) as err:
        raise ResultsError(f"{path} has a value that is not of its column's type: {str(err).splitlines()[0]}") from None


def load(csv_path: str | Path) -> pd.DataFrame:
    """Return the results CSV at csv_path (bench.results.store.load) with each row's block times beside it: column
    block_ms holds a tuple of ms per call, one per timed block, or None where no block was kept (a row that was not
    timed, a file written before samples were kept or copied without them). Statistics pool these blocks
    (bench.results.selection.median_over_rounds)."""
    frame, key = load_rows(csv_path), list(row_key())
    samples = load_samples(csv_path).sort_values("block", kind="stable")
    blocks: dict[tuple[str, ...], list[float]] = {}
    for line, ms in zip(samples[key].astype(str).itertuples(index=False, name=None), samples["block_ms"].astype(float)):
        blocks.setdefault(line, []).append(ms)
    keys = frame[key].astype(str).itertuples(index=False, name=None)
    frame[SAMPLES_FIELD] = pd.Series([tuple(blocks[k]) if k in blocks else None for k in keys], index=frame.index, dtype=object)
    return frame


def keep_samples_of(csv_path: str | Path, rows: pd.DataFrame) -> None:
    """Drop from csv_path's samples file the lines of rows that are not in `rows` (its loaded CSV), if it has any."""
    samples = load_samples(csv_path)
    if samples.empty:
        return
    kept = samples[key_mask(samples, rows)]
    if len(kept) < len(samples):
        write_samples(csv_path, kept)


def key_mask(samples: pd.DataFrame, rows: pd.DataFrame) -> pd.Series:
    """Return which samples lines belong to one of `rows` (compared by their row_key, as text)."""
    key = list(row_key())
    keys = set(rows[key].astype(str).itertuples(index=False, name=None))
    return pd.Series([key in keys for key in samples[key].astype(str).itertuples(index=False, name=None)],
                     index=samples.index, dtype=bool)


def write_samples(csv_path: str | Path, frame: pd.DataFrame) -> None:
    """Replace the samples file of csv_path with frame's lines (a merge's)."""
    path = samples_path(csv_path)
    with locked(path):
        replace_text(path, _text(frame[list(sample_types())].astype(object).to_dict("records"), header=True))
