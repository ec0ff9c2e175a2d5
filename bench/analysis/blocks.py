"""The blocks a report is made of: headings and paragraphs (text), tables, bullets, figures, the verdict's callout.

Apart from report.py so that a section built elsewhere (runtimes.py) returns blocks without
importing the report; the markdown and HTML writers render the same blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Table:
    """A table of the report: header, rows of cells (text), and whether the columns after the first are numbers."""

    header: list[str]
    rows: list[list[str]]
    numbers: bool = True


@dataclass(frozen=True)
class Bullets:
    """A bulleted list of plain lines."""

    items: list[str]


@dataclass(frozen=True)
class Figure:
    """A figure of the report: its name and the PNG to show."""

    name: str
    path: Path


@dataclass(frozen=True)
class Callout:
    """The one line a reader must not miss (the verdict on the paper's claim)."""

    text: str


# A block of the report: a heading ("# ..."), a paragraph (inline `code` and **bold** allowed), or one of the above.
Block = str | Table | Bullets | Figure | Callout
