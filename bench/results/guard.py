"""The results file belongs to the sweep: is the target a file one may write, and is what the sweep wrote still there?"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterable, Mapping

from bench.results.store import locked, replace_text, rows_csv


def rows_text(rows: Iterable[Mapping[str, object]]) -> str:
    """Return rows as the CSV lines append_rows writes for them (no header)."""
    return rows_csv(rows, header=False)


def keep_own_rows(path: str | Path, own: list[str], wait_s: float | None = None) -> str | None:
    """Make sure the file still holds every line in `own` (the rows this sweep wrote) and only well-formed rows.

    A case can write into the file its sweep appends to: junk that would make it unloadable, a
    truncation that loses earlier rows. Under the lock, lines that are not rows of the header's
    width are moved to PATH.rejected, rows of `own` that are gone are written again; return
    what happened in one line, or None when the file was intact. The lock is waited for as append_rows waits.
    """
    path = Path(path)
    if not own:
        return None
    with locked(path, wait_s):
        text = path.read_text(errors="replace")
        present = set(text.splitlines(keepends=True))  # a row with a quoted line break: looked for in the text
        missing = [line for line in own if line not in present and (line.count("\n") == 1 or line not in text)]
        if not missing and _well_formed(text):
            return None
        lines = text.splitlines(keepends=True)
        header = rows_csv([], header=True)  # the sweep's first append wrote it (or migrated the file to it)
        body = lines[1:] if lines and lines[0] == header else lines  # a damaged header is junk too
        width = len(next(csv.reader([header])))
        good, junk = [], []
        for line in body:
            (good if line.endswith("\n") and _well_formed(header + line, width) else junk).append(line)
        if junk:
            with open(path.with_name(path.name + ".rejected"), "a") as rejected:
                rejected.writelines(line if line.endswith("\n") else line + "\n" for line in junk)
        replace_text(path, header + "".join(good) + "".join(missing))
    parts = ([f"{len(junk)} malformed line(s) moved to {path.name}.rejected"] if junk else []) + \
            ([f"{len(missing)} row(s) of this sweep were gone and are written again"] if missing else [])
    return f"{path} was changed behind the sweep's back: " + "; ".join(parts)


def _well_formed(text: str, width: int | None = None) -> bool:
    """Return whether text is a header and whole records of its width (quoted line breaks allowed)."""
    if not text.endswith("\n"):
        return False
    try:
        records = list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error:
        return False
    width = width or len(records[0])
    return all(len(record) == width for record in records)


def unwritable(path: str | Path) -> str | None:
    """Return why a results file cannot be written at path (checked before anything is measured), or None.

    Only a regular file or a new one in a writable folder: appending to a device, a FIFO or a
    folder fails or hangs, and the rewrite-and-rename of append_rows would replace a device
    node (as root, /dev/null) or a symbolic link by a regular file.
    """
    path = Path(path)
    if path.is_symlink():
        return f"{path} is a symbolic link; give the file it points to ({os.path.realpath(path)}) instead"
    if path.exists():
        if not path.is_file():
            kind = "a folder" if path.is_dir() else "a device, FIFO or socket"
            return f"{path} is {kind}, not a results file"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"{path} is not readable and writable by this user"
    folder = next((parent for parent in path.absolute().parents if parent.exists()), Path("/"))
    if not folder.is_dir():
        return f"{folder} is not a folder: {path} cannot be created"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write in {folder} (read-only or not this user's)"
    return None
