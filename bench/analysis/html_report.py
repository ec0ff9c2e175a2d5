"""The report as one self-contained HTML page: the same blocks as the markdown report, figures embedded, tables sortable.

Readable offline: no file or network fetch, the PNGs inline as data URIs, the CSS and the sorting
script inline. Every text from a results file is escaped (html.escape) before any markup is added.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from bench.analysis.blocks import Block, Bullets, Callout, Figure, Table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; cursor: pointer; user-select: none; }
th.sorted-up::after { content: " \\25B2"; } th.sorted-down::after { content: " \\25BC"; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0 1.5em; }
code { background: #f5f5f5; padding: 0 0.2em; }
.verdict { font-size: 1.15em; padding: 0.6em 0.8em; background: #fff8e0; border-left: 4px solid #e0a000; }
"""

# Click a header to sort its table by that column (numbers as numbers), again to reverse.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(th => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], up = !th.classList.contains("sorted-up"), column = th.cellIndex;
  const key = row => { const text = row.cells[column].innerText.trim(), number = parseFloat(text);
                       return isNaN(number) ? text : number; };
  const rows = Array.from(body.rows).sort((a, b) => { const x = key(a), y = key(b);
    const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
    return up ? order : -order; });
  rows.forEach(row => body.appendChild(row));
  th.parentNode.querySelectorAll("th").forEach(other => other.classList.remove("sorted-up", "sorted-down"));
  th.classList.add(up ? "sorted-up" : "sorted-down");
}));
"""


def inline(text: str) -> str:
    """Return a paragraph's text as HTML: escaped, then `code` and **bold** marked up."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)


def table_html(table: Table) -> str:
    """Return a sortable HTML table; cells escaped, number columns right-aligned."""
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in table.header)
    body = []
    for row in table.rows:
        cells = "".join(f'<td class="number">{html.escape(str(cell))}</td>' if table.numbers and index
                        else f"<td>{html.escape(str(cell))}</td>" for index, cell in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def figure_html(figure: Figure) -> str:
    """Return the figure as an <img> with the PNG inline (a data URI), or a line saying it is missing."""
    path = Path(figure.path)
    if path.suffix.lower() != ".png" or not path.is_file():
        return f"<p>Figure {html.escape(figure.name)}: not found.</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(figure.name)}" src="data:image/png;base64,{data}"></figure>'


def block_html(block: Block) -> str:
    """Return one block of the report as HTML."""
    if isinstance(block, Table):
        return table_html(block)
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Figure):
        return figure_html(block)
    if isinstance(block, Callout):
        return f'<p class="verdict">{html.escape(block.text)}</p>'
    heading = re.match(r"(#{1,3}) (.*)", block)
    if heading:
        level = len(heading.group(1))
        return f"<h{level}>{inline(heading.group(2))}</h{level}>"
    return f"<p>{inline(block)}</p>"


def to_html(blocks: list[Block]) -> str:
    """Return the whole page."""
    title = next((block.lstrip("# ") for block in blocks if isinstance(block, str) and block.startswith("# ")), "report")
    body = "\n".join(block_html(block) for block in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n<script>{SORT_SCRIPT}</script>\n</body></html>\n")
