"""The tidy results schema: one row per case; atomic appends; a typed loader for notebooks."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

STATUSES = ("ok", "skipped", "oom", "error", "timeout", "mismatch")

# Column -> pandas dtype. Add columns at the end; never rename without a reason.
SCHEMA: dict[str, str] = {
    "run_id": "string",
    "timestamp": "string",
    "variant": "string",
    "family": "string",
    "device": "string",
    "device_name": "string",
    "dtype": "string",
    "batch": "int64",
    "height": "int64",
    "width": "int64",
    "heads": "int64",
    "head_dim": "int64",
    "kernel_size": "int64",
    "pass": "string",
    "compiled": "boolean",
    "status": "string",
    "reason": "string",
    "median_ms": "float64",
    "iqr_ms": "float64",
    "min_ms": "float64",
    "n_measurements": "Int64",
    "peak_mem_mb": "float64",
    "throughput_per_s": "float64",
    "gflop": "float64",
    "gflop_per_s": "float64",
    "max_abs_err": "float64",
    "threads": "Int64",
    "host": "string",
    "cpu": "string",
    "gpu": "string",
    "torch_version": "string",
    "natten_version": "string",
    "git_sha": "string",
    "backend": "string",
    # issue 7: compile time and the roofline (bench/roofline.py)
    "compile_ms": "float64",
    "peak_gflop_per_s": "float64",
    "peak_gb_per_s": "float64",
    "bytes_moved": "float64",
    "arithmetic_intensity": "float64",
    "roofline_fraction": "float64",
    "bound": "string",
}
COLUMNS = tuple(SCHEMA)
CASE_KEY = ("variant", "device", "dtype", "batch", "height", "width", "heads", "head_dim", "kernel_size", "pass", "compiled")


class ResultsError(ValueError):
    """A results file that cannot be read as this schema; the message is one line."""


def _format(value: object) -> object:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value


def _rows_csv(rows: Iterable[Mapping[str, object]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="raise", lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({column: _format(row.get(column)) for column in COLUMNS})
    return buffer.getvalue()


def append_rows(path: str | Path, rows: Iterable[Mapping[str, object]]) -> None:
    """Append rows to the CSV at `path` atomically (a crash leaves the old or the new file).

    The new content is written to a temporary file in the same folder, fsync'ed, and
    renamed over the old one, so readers never see a half-written row.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text() if path.exists() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    text = existing + _rows_csv(rows, header=not existing)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path) -> pd.DataFrame:
    """Return the results CSV at `path` as a DataFrame with the schema's dtypes."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"no results file at {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path} is not a results CSV: {str(err).splitlines()[0]}") from None
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise ResultsError(f"{path} is not a results CSV: missing column(s) {', '.join(missing)}")
    return _typed(frame, path)


def _typed(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    for column, dtype in SCHEMA.items():
        text = frame[column].replace("", pd.NA)
        try:
            if dtype in ("int64", "Int64"):
                frame[column] = pd.to_numeric(text).astype(dtype)
            elif dtype == "float64":
                frame[column] = pd.to_numeric(text).astype("float64")
            elif dtype == "boolean":
                frame[column] = text.str.lower().map({"true": True, "false": False}).astype("boolean")
            else:
                frame[column] = text.astype("string")
        except (ValueError, TypeError) as err:
            raise ResultsError(f"{path}: column {column!r} has a bad value ({err})") from None
    bad = sorted(set(frame["status"].dropna()) - set(STATUSES))
    if bad:
        raise ResultsError(f"{path}: unknown status {bad[0]!r} (known: {', '.join(STATUSES)})")
    return frame
