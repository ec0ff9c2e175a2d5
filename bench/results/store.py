"""The results store: crash-safe, locked appends to a CSV, schema migration, and the typed loader."""

from __future__ import annotations

import csv
import glob
import io
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from bench.axes import fills
from bench.messages import first_line
from bench.results.schema import RENAMED, REQUIRED, RUNTIMES, SAMPLES_FIELD, STATUSES, ResultsError, dtypes
from bench.results.schema import columns as results_columns


def _format(value: object) -> object:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):  # pd.NA: rows of a loaded frame
        return ""
    return value


def rows_csv(rows: Iterable[Mapping[str, object]], header: bool, columns: tuple[str, ...] | None = None,
             delimiter: str = ",") -> str:
    columns = columns or results_columns()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="raise", lineterminator="\n", delimiter=delimiter)
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({column: _format(row.get(column)) for column in columns})
    return buffer.getvalue()


def append_rows(path: str | Path, rows: Iterable[Mapping[str, object]], wait_s: float | None = None) -> None:
    """Append rows to the CSV at `path`; a crash leaves the old file, or it plus whole rows.

    Writers of one file take turns (an exclusive lock on it), so concurrent sweeps appending
    to one CSV lose no row. A file that ends in a whole row and has the current header gets a
    plain append (fsync'ed) that writes only the new rows. Anything else (a new
    file, a torn last row from a killed writer, an older header) is rewritten whole into a
    temporary file that is then renamed over the old one. A lock held longer than wait_s
    (LOCK_WAIT_S by default) is LockTimeout.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path, wait_s) as handle:
        existing = path.read_text()
        if existing and _ends_whole(existing) and _has_current_header(existing):
            handle.write(rows_csv(rows, header=False))
            handle.flush()
            os.fsync(handle.fileno())
            return
        existing, _ = _complete(existing)  # a torn last row (a killed writer) is dropped, not glued to ours
        existing = _in_schema(existing, path)
        replace_text(path, existing + rows_csv(rows, header=not existing))


LOCK_WAIT_S = 10.0  # a writer holds the lock for milliseconds; longer means someone else holds it on purpose


class LockTimeout(ResultsError):
    """The results file stayed locked by another process for LOCK_WAIT_S."""


def _lock(handle, path: Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise LockTimeout(f"{path} has been locked by another process for {wait_s:g} s") from None
            time.sleep(0.02)


@contextmanager
def locked(path: Path, wait_s: float | None = None):
    """Yield path opened for appending (created if missing) under an exclusive advisory lock.

    A writer that rewrote the file renamed a new one over it: whoever waited on the old one
    sees another inode once it has the lock, and opens the file again. A lock held for more
    than wait_s (LOCK_WAIT_S by default) is LockTimeout, never a hang.
    """
    while True:
        handle = open(path, "a")
        if fcntl is not None:  # POSIX; elsewhere writers are not serialised
            _lock(handle, path, LOCK_WAIT_S if wait_s is None else wait_s)
        try:
            current = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        handle.close()
    with handle:  # closing releases the lock
        if fcntl is not None:  # every writer replaces the file under this lock: a temporary copy left now is an orphan
            for orphan in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
                orphan.unlink(missing_ok=True)
        yield handle


def _ends_whole(text: str) -> bool:
    """Return whether text ends with a whole row: a newline outside quotes (even quote count)."""
    return text.endswith("\n") and text.count('"') % 2 == 0


def replace_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode(path))  # mkstemp makes it 0600; a results file is as readable as any other
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _file_mode(path: Path) -> int:
    """Return the mode of the file being replaced, or what a new file gets under this process's umask."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _complete(text: str) -> tuple[str, bool]:
    """Return text ending with a whole row: a torn last row is cut off; and whether one was."""
    if not text or text.endswith("\n"):
        return text, False
    start = _last_record_start(text)
    try:
        last = list(csv.reader(io.StringIO(text[start:]), strict=True))
        header = next(csv.reader(io.StringIO(text), strict=True))
    except csv.Error:
        return text[:start], True
    if start == 0 or (len(last) == 1 and len(last[0]) == len(header)):
        return text + "\n", False  # a whole row that only lacks its newline
    return text[:start], True


def _last_record_start(text: str) -> int:
    # The last newline outside quotes; quotes are doubled inside fields, so parity tells.
    total, after = text.count('"'), 0
    for index in range(len(text) - 1, -1, -1):
        if text[index] == '"':
            after += 1
        elif text[index] == "\n" and (total - after) % 2 == 0:
            return index + 1
    return 0


def _has_current_header(text: str) -> bool:
    return next(csv.reader(io.StringIO(text))) == list(results_columns())


def _in_schema(text: str, path: Path) -> str:
    """Return the existing CSV text under the current header (older files gain the new columns)."""
    if not text:
        return text
    if _has_current_header(text):
        return text
    reader = csv.reader(io.StringIO(text))
    header, rows = renamed(next(reader), [row for row in reader if row])
    unknown = [column for column in header if column not in dtypes()]
    if unknown or len(set(header)) != len(header):
        raise ResultsError(f"{path} has columns this version does not write ({', '.join(unknown[:3]) or 'duplicates'}); "
                           "append to a new file")
    return rows_csv((dict(zip(header, row)) for row in rows), header=True)


def renamed(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Return header and rows with the columns renamed since they were written (schema.RENAMED), without block_ms (a
    loaded frame written back with to_csv carries its block times as text: the samples file holds them)."""
    if SAMPLES_FIELD in header:
        at = header.index(SAMPLES_FIELD)
        header, rows = [*header[:at], *header[at + 1:]], [[*row[:at], *row[at + 1:]] for row in rows]
    for old, (new, cells) in RENAMED.items():
        if old in header and new not in header:
            at = header.index(old)
            header = [*header[:at], new, *header[at + 1:]]
            rows = [[*row[:at], cells.get(row[at].strip().lower(), row[at]), *row[at + 1:]] if len(row) > at else row
                    for row in rows]
    return header, rows


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise ResultsError(f"no results file at {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ResultsError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path} is not a results CSV: it is not UTF-8 text") from None
    if "\x00" in text:
        raise ResultsError(f"{path} is not a results CSV: it holds binary data")
    if not text.strip():
        raise ResultsError(f"{path} is not a results CSV: the file is empty")
    return text


def _records(text: str, path: Path) -> tuple[list[str], list[list[str]]]:
    """Return the header and the rows of CSV text, each row with as many fields as the header."""
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        header = next(reader)
        missing = [column for column in REQUIRED if column not in renamed(header, [])[0]]
        if missing:
            more = " ..." if len(missing) > 4 else ""
            raise ResultsError(f"{path} is not a results CSV: missing column(s) {', '.join(missing[:4])}{more}")
        if len(set(header)) != len(header):
            raise ResultsError(f"{path} is not a results CSV: a column name is repeated in its header")
        rows = []
        for row in reader:
            if row and len(row) != len(header):
                raise ResultsError(f"{path}: line {reader.line_num} has {len(row)} fields, the header {len(header)}")
            if row:
                rows.append(row)
    except csv.Error as err:
        raise ResultsError(f"{path} is not a results CSV: line {reader.line_num}: {err}") from None
    return renamed(header, rows)


def load(path: str | Path) -> pd.DataFrame:
    """Return the results CSV at `path` as a DataFrame with the schema's dtypes.

    A torn last row (a writer killed mid-line) is left out and flagged in
    `frame.attrs["partial_last_line"]`; anything else malformed is a one-line ResultsError.
    """
    path = Path(path)
    text, torn = _complete(_read_text(path))
    header, rows = _records(text, path)
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    for column in results_columns():
        if column not in frame.columns:
            frame[column] = ""
    frame = _typed(frame, path)
    frame.attrs["partial_last_line"] = torn
    return frame


def _typed(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    filled = fills()
    for column, dtype in dtypes().items():
        text = frame[column].replace("", pd.NA)
        if column in filled:  # a row from before the column existed: what it measured (bench/axes.py)
            text = text.fillna(str(filled[column]))
        try:
            if dtype in ("int64", "Int64"):
                frame[column] = pd.to_numeric(text).astype(dtype)
            elif dtype == "float64":
                frame[column] = pd.to_numeric(text).astype("float64")
            elif dtype == "boolean":
                flags = text.str.lower().map({"true": True, "false": False})
                if (flags.isna() & text.notna()).any():
                    raise ValueError(f"expected true or false, got {text[flags.isna() & text.notna()].iloc[0]!r}")
                frame[column] = flags.astype("boolean")
            else:
                frame[column] = text.astype("string")
        except (ValueError, TypeError) as err:
            raise ResultsError(f"{path}: column {column!r} has a bad value ({first_line(err)})") from None
    for column, known in (("status", STATUSES), ("runtime", RUNTIMES)):
        bad = sorted(set(frame[column].dropna()) - set(known))
        if bad:
            raise ResultsError(f"{path}: unknown {column} {bad[0]!r} (known: {', '.join(known)})")
    return frame
