"""The markdown report: tables from the CSV's numbers, machine, figures, border semantics; bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import run_bench
from attention_variants.registry import FAMILIES
from bench.analysis.frames import load_results
from bench.analysis.report import BORDER_SEMANTICS, compare_runs, markdown_table, render
from bench.results import load
from synthetic_results import grid_rows, row, write_csv


@pytest.fixture
def report_csv(tmp_path):
    rows = grid_rows(["im2col", "slide", "window"], [14, 28], [1])
    rows.append(row("natten", 1, 14, status="skipped", reason="natten is not installed"))
    rows.append(row("natten", 1, 28, status="oom", reason="CUDA out of memory"))
    return write_csv(tmp_path / "results" / "run.csv", rows)


def table_after(markdown: str, heading: str) -> list[list[str]]:
    """Return the cells of the first markdown table after `heading`."""
    lines = markdown.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append([cell.strip() for cell in line.strip("|").split("|")])
    return block


def test_report_is_written_next_to_the_csv_with_the_key_tables(report_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_bench.main(["report", str(report_csv)]) == 0
    md_path = report_csv.with_suffix(".md")
    assert capsys.readouterr().out.strip() == str(md_path)
    text = md_path.read_text()
    medians = table_after(text, "## Median latency (ms)")
    assert medians[0] == ["variant (family)", "14×14", "28×28"]
    body = {cells[0]: cells[1:] for cells in medians[2:]}
    assert body["im2col (local-zero-pad)"] == ["10.0", "40.0"]  # 10 ms x 784 / 196 at 28x28
    assert body["window (window)"] == ["1.00", "4.00"]
    assert body["natten (neighborhood)"] == ["skipped", "oom"]
    speedups = {cells[0]: cells[1:] for cells in table_after(text, "## Speed-up relative to im2col")[2:]}
    assert speedups["slide (local-zero-pad)"] == ["2.0×", "2.0×"] and speedups["window (window)"] == ["10×", "10×"]
    assert "| host | synthetic-a |" in text and "Synthetic CPU of synthetic-a" in text
    assert "natten: oom (28×28 b1 float32 forward): CUDA out of memory" in text
    links = re.findall(r"!\[(\w+)\]\(([^)]+)\)", text)
    assert [name for name, _ in links] == ["latency", "speedup", "memory", "accuracy"]  # one batch size: no throughput
    assert all((md_path.parent / link).resolve().is_file() for _, link in links)
    for family in FAMILIES:
        assert f"| {family} |" in text


def test_every_family_has_a_border_note():
    assert set(BORDER_SEMANTICS) == set(FAMILIES)


def test_report_without_plots_links_none(report_csv, capsys):
    assert run_bench.main(["report", str(report_csv), "--no-plots"]) == 0
    assert "No figures drawn." in report_csv.with_suffix(".md").read_text()


def test_report_of_a_csv_with_only_failed_rows_is_one_clear_line(tmp_path, capsys):
    csv = write_csv(tmp_path / "bad.csv", [row("im2col", status="timeout", reason="ran past 60 s")])
    assert run_bench.main(["report", str(csv)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no ok rows" in err and "1 timeout" in err
    assert not Path(tmp_path / "bad.md").exists()


def test_compare_runs_matches_cases_and_gives_ratios(tmp_path):
    first = write_csv(tmp_path / "a.csv", grid_rows(["im2col", "slide"], [14], [1]))
    slower = [row(v, 1, 14, host="b", run_id="20260102-000000-bbbbbb", median_ms=m) for v, m in (("im2col", 20.0), ("slide", 5.0))]
    second = write_csv(tmp_path / "b.csv", slower)
    table = compare_runs(load(first), load(second)).set_index("variant")
    assert table.loc["im2col", "time_ratio"] == pytest.approx(2.0) and table.loc["slide", "time_ratio"] == pytest.approx(1.0)
    assert table.loc["slide", "speedup_first"] == pytest.approx(2.0)
    assert table.loc["slide", "speedup_second"] == pytest.approx(4.0)


def test_markdown_table_alignment():
    assert markdown_table(["a", "b"], [["x", "1"]]).splitlines() == ["| a | b |", "|:--|--:|", "| x | 1 |"]
    assert markdown_table(["a", "b"], [["x", "y"]], numbers=False).splitlines()[1] == "|:--|:--|"


@pytest.fixture
def merged_csv(tmp_path):
    """Return a cluster run's merged file: one run id on three hosts; node-b has node-a's hardware, its own timings."""
    rows = grid_rows(["im2col", "slide", "window"], [14, 28], [1], host="node-a")
    rows += [row(v, 1, r, host="node-b", device_name="Synthetic CPU of node-a", median_ms=ms * r * r / 196)
             for v, ms in (("im2col", 10.0), ("slide", 20.0), ("window", 3.0)) for r in (14, 28)]
    rows += grid_rows(["im2col", "slide"], [14], [1], host="node-c", threads=8)
    rows.append(row("natten", 1, 14, host="node-c", threads=8, status="oom", reason="out of memory"))
    return write_csv(tmp_path / "results" / "merged.csv", rows)


def section(markdown: str, heading: str) -> str:
    """Return the text of one `## ` section (up to the next `## ` heading)."""
    return markdown.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def test_a_merged_file_gets_a_machines_table_and_one_section_per_machine(merged_csv, capsys):
    assert run_bench.main(["report", str(merged_csv), "--no-plots"]) == 0
    text = merged_csv.with_suffix(".md").read_text()
    machines = table_after(text, "## Machines")
    assert machines[0] == ["machine", "devices", "threads", "rows", "ok rows", "run ids"]
    assert machines[2:] == [["node-a (Synthetic CPU of node-a)", "cpu", "4", "6", "6", "20260101-000000-aaaaaa"],
                            ["node-b (Synthetic CPU of node-a)", "cpu", "4", "6", "6", "20260101-000000-aaaaaa"],
                            ["node-c (Synthetic CPU of node-c)", "cpu", "8", "3", "2", "20260101-000000-aaaaaa"]]
    node_a, node_b = section(text, "## node-a (Synthetic CPU of node-a)"), section(text, "## node-b (Synthetic CPU of node-a)")
    node_c = section(text, "## node-c (Synthetic CPU of node-c)")
    medians = lambda part: {cells[0]: cells[1:] for cells in table_after(part, "### Median latency (ms)")[2:]}  # noqa: E731
    assert medians(node_a) == {"im2col (local-zero-pad)": ["10.0", "40.0"], "slide (local-zero-pad)": ["5.00", "20.0"],
                               "window (window)": ["1.00", "4.00"]}
    assert medians(node_b) == {"im2col (local-zero-pad)": ["10.0", "40.0"], "slide (local-zero-pad)": ["20.0", "80.0"],
                               "window (window)": ["3.00", "12.0"]}
    assert medians(node_c) == {"im2col (local-zero-pad)": ["10.0"], "slide (local-zero-pad)": ["5.00"],
                               "natten (neighborhood)": ["oom"]}
    speedups = {cells[0]: cells[1:] for cells in table_after(node_b, "### Speed-up relative to im2col")[2:]}
    assert speedups["slide (local-zero-pad)"] == ["0.5×", "0.5×"] and speedups["window (window)"] == ["3.3×", "3.3×"]
    assert "**Slide-Transformer's claim (Slide faster than Im2Col) on node-a: HOLDS" in node_a
    assert "**Slide-Transformer's claim (Slide faster than Im2Col) on node-b: DOES NOT HOLD" in node_b
    assert "| host | node-b |" in node_b and "node-a" not in node_b.replace("Synthetic CPU of node-a", "")
    assert "| threads | 8 |" in node_c and "natten: oom (14×14 b1 float32 forward): out of memory" in node_c
    assert "natten (neighborhood)" not in node_a and "oom" not in node_b and "None: every case ran." in node_a
    assert text.count("### Verdict") == 3 and "\n## Machine\n" not in text  # the one-machine headings sit one level down


def test_the_machines_figure_goes_to_the_machines_section(merged_csv, tmp_path):
    frame = load_results([merged_csv])
    figures = {"latency": [tmp_path / "latency.png"], "machines": [tmp_path / "machines.png"]}
    text = render(frame, merged_csv, tmp_path / "merged.md", figures, all_rounds=load(merged_csv))
    assert "![machines](machines.png)" in section(text, "## Machines")
    assert section(text, "## Figures").strip() == "![latency](latency.png)"
    one_machine = render(load_results([merged_csv]).query("host == 'node-a'"), merged_csv, tmp_path / "a.md", figures)
    assert "## Machines" not in one_machine and "on this machine: HOLDS" in one_machine


def test_a_gpu_nodes_cpu_and_cuda_rows_get_a_table_each(tmp_path):
    """One host, one shape, two devices (a GPU node sweeping cpu,cuda): a table per device, each its own numbers."""
    cuda = dict(device="cuda", device_name="NVIDIA H100")
    rows = [row("im2col", host="gpu-node"), row("slide", host="gpu-node"),
            row("im2col", host="gpu-node", median_ms=0.4, iqr_ms=0.01, **cuda),
            row("slide", host="gpu-node", median_ms=0.1, iqr_ms=0.002, **cuda)]
    csv = write_csv(tmp_path / "r.csv", rows)
    text = render(load_results([csv]), csv, tmp_path / "r.md", {})
    latency = text.split("## Median latency")[1].split("## Speed-up")[0]
    speedup = text.split("## Speed-up")[1].split("\n## ")[0]
    cpu_part, cuda_part = latency.split("**device cuda")
    assert "**device cpu" in cpu_part and "| 10.0 |" in cpu_part and "| 5.00 |" in cpu_part
    assert "| 0.400 |" in cuda_part and "| 0.100 |" in cuda_part
    assert "4.0×" in speedup.split("**device cuda")[1] and "2.0×" in speedup.split("**device cuda")[0]


def test_speed_ups_never_divide_one_machines_time_by_anothers(tmp_path):
    rows = [row("im2col", host="a"), row("slide", host="a"), row("im2col", host="b", median_ms=40.0)]
    csv = write_csv(tmp_path / "r.csv", rows)
    from bench.analysis.summary import add_speedup
    ratios = add_speedup(load(csv)).set_index(["host", "variant"])["speedup"]
    assert ratios[("a", "slide")] == 2.0 and ratios[("b", "im2col")] == 1.0
    assert ratios[("a", "im2col")] == 1.0  # not 4.0: b's im2col is not a's reference
