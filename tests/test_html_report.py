"""The HTML report: one self-contained page, opened in a real headless browser (Chromium)."""

from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib import image

import run_bench
from bench.analysis.html_report import inline, table_html
from bench.analysis.report import Table
from synthetic_results import grid_rows, row, write_csv

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (.ci/run installs Debian's `chromium`)")


def headless(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def html_report(tmp_path):
    rows = grid_rows(["im2col", "slide", "window"], [14, 28], [1])
    rows.append(row("natten", 1, 14, status="skipped", reason="natten is not <b>installed</b> | here"))
    csv = write_csv(tmp_path / "run.csv", rows)
    assert run_bench.main(["report", "--html", str(csv)]) == 0
    return csv.with_suffix(".html")


def test_the_page_is_self_contained_with_the_verdict_and_escaped_text(html_report):
    page = html_report.read_text()
    assert "Slide-Transformer&#x27;s claim (Slide faster than Im2Col) on this machine: HOLDS" in page
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # nothing fetched: figures are data URIs
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert images and all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    assert "<b>installed</b>" not in page and html.escape("natten is not <b>installed</b> | here") in page


def test_cells_and_paragraphs_are_escaped_before_markup():
    assert table_html(Table(["<x>"], [["<script>alert(1)</script>"]])).count("<script>") == 0
    assert inline("a `<i>` and **b**") == "a <code>&lt;i&gt;</code> and <b>b</b>"


@needs_chromium
@pytest.mark.slow
@pytest.mark.browser
def test_chromium_renders_the_page_with_its_verdict_and_figures(html_report, tmp_path):
    dom = headless("--dump-dom", html_report.as_uri())
    assert dom.returncode == 0, dom.stderr[-500:]
    assert "on this machine: HOLDS" in dom.stdout and "<img" in dom.stdout
    shot = tmp_path / "page.png"
    done = headless(f"--screenshot={shot}", "--window-size=1200,3000", "--hide-scrollbars", html_report.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-500:]
    pixels = image.imread(shot)[..., :3]
    not_white = (pixels < 0.9).any(axis=-1).mean()
    assert not_white > 0.02 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, tables and figures drawn


@needs_chromium
@pytest.mark.slow
@pytest.mark.browser
def test_clicking_a_header_sorts_its_table(html_report, tmp_path):
    # The page's own script, driven by a click in the browser: the latency table sorted by its first resolution.
    page = html_report.read_text().replace("</body>", """<script>
      const table = Array.from(document.querySelectorAll("table.sortable")).find(t => t.innerText.includes("variant (family)"));
      table.querySelectorAll("th")[1].click();
      document.body.setAttribute("data-sorted", Array.from(table.tBodies[0].rows).map(r => r.cells[1].innerText).join(","));
    </script></body>""")
    clicked = tmp_path / "clicked.html"
    clicked.write_text(page)
    dom = headless("--dump-dom", clicked.as_uri()).stdout
    values = re.search(r'data-sorted="([^"]*)"', dom).group(1).split(",")
    numbers = [float(value) for value in values[:-1]]
    assert numbers == sorted(numbers) and len(numbers) == 3 and values[-1] == "skipped"  # numbers ascending, then text


def test_a_merged_file_gets_one_section_per_machine(tmp_path):
    rows = grid_rows(["im2col", "slide"], [14], [1], host="node-a")
    rows += [row(v, 1, 14, host="node-b", median_ms=ms) for v, ms in (("im2col", 10.0), ("slide", 20.0))]
    csv = write_csv(tmp_path / "merged.csv", rows)
    assert run_bench.main(["report", "--html", "--no-plots", str(csv)]) == 0
    page = csv.with_suffix(".html").read_text()
    headings = re.findall(r"<h2>([^<]*)</h2>", page)
    assert headings[0] == "Machines" and headings[-2:] == ["node-a (Synthetic CPU of node-a)", "node-b (Synthetic CPU of node-b)"]
    node_a, node_b = page.split("<h2>node-a")[1].split("<h2>node-b")
    assert "on node-a: HOLDS" in node_a and "on node-b: DOES NOT HOLD" in node_b
    slide_on_b = '<td class="number">20.0</td>'  # node-b's slide at 14x14
    assert page.count("<h3>Verdict</h3>") == 2 and slide_on_b not in node_a and slide_on_b in node_b
