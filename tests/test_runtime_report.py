"""Which formulation runs where, and how fast: the runtime tables, their report section (markdown, HTML) and figure."""

from __future__ import annotations

import pytest
from matplotlib import colors as mcolors

import run_bench
from bench.analysis.frames import load_results
from bench.analysis.report import render
from bench.analysis.runtimes import (
    HEADING,
    not_run_text,
    runtime_tables,
    runtimes_present,
)
from bench.plots.figures import OPTIONAL_FIGURES
from bench.plots.runtimes import MAX_PANELS, runtimes_figure
from bench.plots.style import RUNTIME_COLORS
from synthetic_results import grid_rows, row, write_csv

ONNX_FAILED = "torch.onnx.export failed: DispatchError: No ONNX function found for aten::unfold"
AOTI_FAILED = "AOTInductor failed: InductorError: LoweringException: <b>boom</b> | here"
INFERENCE_ONLY = "{} runs inference only: forward, no backward"
# variant -> runtime -> median ms, or (status, reason) for a row that did not run; iqr 1% of the median (not noisy)
FORWARD = {
    "im2col": {"eager": 10.0, "inductor": 2.5, "export": 0.5, "onnxruntime": ("error", ONNX_FAILED)},
    "slide": {"eager": 5.0, "inductor": 1.25, "export": ("error", AOTI_FAILED), "onnxruntime": 0.25},
    "window": {"eager": 1.0, "inductor": 0.5, "export": 0.2, "onnxruntime": 0.125},
    "natten": {"eager": ("error", "natten kernel crashed"), "inductor": 3.0},
}
BACKWARD = {"im2col": {"eager": 30.0, "inductor": 10.0, "export": ("skipped", INFERENCE_ONLY.format("export")),
                       "onnxruntime": ("skipped", INFERENCE_ONLY.format("onnxruntime"))}}


def _rows(cells: dict, **overrides) -> list[dict]:
    rows = []
    for variant, per_runtime in cells.items():
        for runtime, value in reversed(per_runtime.items()):  # written out of order: the columns still come eager first
            if isinstance(value, tuple):
                rows.append(row(variant, runtime=runtime, status=value[0], reason=value[1], **overrides))
            else:
                rows.append(row(variant, runtime=runtime, median_ms=value, iqr_ms=value / 100, **overrides))
    return rows


@pytest.fixture
def runtimes_csv(tmp_path):
    return write_csv(tmp_path / "results" / "runtimes.csv", _rows(FORWARD) + _rows(BACKWARD, **{"pass": "backward"}))


@pytest.fixture
def eager_csv(tmp_path):
    return write_csv(tmp_path / "results" / "eager.csv", grid_rows(["im2col", "slide", "window"], [14], [1]))


def _by_title(frame) -> dict:
    return {table.title: table for table in runtime_tables(frame)}


FORWARD_TITLE = "14×14 · batch 1 · cpu float32 forward · heads 2 · head dim 32 · kernel 7"
BACKWARD_TITLE = FORWARD_TITLE.replace("forward", "backward")


def test_a_table_per_case_shape_with_the_median_and_the_speed_up_over_eager(runtimes_csv):
    tables = _by_title(load_results([runtimes_csv]))
    assert sorted(tables) == sorted([FORWARD_TITLE, BACKWARD_TITLE])
    forward = tables[FORWARD_TITLE]
    assert forward.header == ["variant (family)", "eager", "inductor", "export", "onnxruntime"]
    assert forward.rows == [
        ["im2col (local-zero-pad)", "10.0", "2.50 (4.0×)", "0.500 (20×)", "error: torch.onnx.export"],
        ["slide (local-zero-pad)", "5.00", "1.25 (4.0×)", "error: AOTInductor", "0.250 (20×)"],
        ["window (window)", "1.00", "0.500 (2.0×)", "0.200 (5.0×)", "0.125 (8.0×)"],
        ["natten (neighborhood)", "error", "3.00", "", ""],  # no eager time: no ratio; not swept: empty
    ]
    backward = tables[BACKWARD_TITLE]
    assert backward.rows == [["im2col (local-zero-pad)", "30.0", "10.0 (3.0×)", "skipped", "skipped"]]


def test_each_table_has_a_summary_line(runtimes_csv):
    tables = _by_title(load_results([runtimes_csv]))
    assert tables[FORWARD_TITLE].summary == "runs everywhere: window; fastest: window under onnxruntime, 0.125 ms."
    assert tables[BACKWARD_TITLE].summary == "runs everywhere: none; fastest: im2col under inductor, 10.0 ms."


@pytest.mark.parametrize("status,reason,word", [
    ("error", ONNX_FAILED, "error: torch.onnx.export"),
    ("error", AOTI_FAILED, "error: AOTInductor"),
    ("error", "torch.export failed: RuntimeError: Cannot access data pointer of Tensor", "error: torch.export"),
    ("error", "ONNX Runtime session failed: Fail: [ONNXRuntimeError] : 1 : FAIL : Load model failed", "error: ONNX Runtime session"),
    ("error", "AOTInductor load failed: RuntimeError: bad package", "error: AOTInductor load"),
    ("error", "a plain crash", "error"),
    ("skipped", INFERENCE_ONLY.format("onnxruntime"), "skipped"),
    ("oom", "CUDA out of memory", "oom"),
])
def test_a_cell_without_a_time_says_the_status_and_the_failing_step(status, reason, word):
    assert not_run_text(row("im2col", status=status, reason=reason)) == word


def test_one_runtime_gives_no_table_no_section_and_no_figure(eager_csv, tmp_path):
    frame = load_results([eager_csv])
    assert runtimes_present(frame) == ["eager"]
    assert runtime_tables(frame) == []
    assert HEADING not in render(frame, eager_csv, tmp_path / "eager.md", {})
    assert runtimes_figure(frame) is None


def test_the_markdown_report_shows_the_section_after_the_speed_ups(runtimes_csv, tmp_path):
    text = render(load_results([runtimes_csv]), runtimes_csv, tmp_path / "runtimes.md", {})
    assert text.index("## Speed-up relative to im2col") < text.index(HEADING) < text.index("## Accuracy")
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    assert "speed-up over the same variant run eagerly" in section and "`export_ms`" in section
    assert "AOTInductor package" in section and "CPU execution provider" in section
    assert f"**{FORWARD_TITLE}**" in section and f"**{BACKWARD_TITLE}**" in section
    assert "| slide (local-zero-pad) | 5.00 | 1.25 (4.0×) | error: AOTInductor | 0.250 (20×) |" in section
    assert "runs everywhere: window; fastest: window under onnxruntime, 0.125 ms." in section
    not_measured = text.split("## Cases not measured", 1)[1]
    assert "torch.onnx.export failed: DispatchError" in not_measured  # the full reason, where the intro says


def test_the_html_report_renders_the_section(runtimes_csv):
    assert run_bench.main(["report", "--html", "--no-plots", str(runtimes_csv)]) == 0
    page = runtimes_csv.with_suffix(".html").read_text()
    assert f"<h2>{HEADING.removeprefix('## ')}</h2>" in page
    assert '<td class="number">0.125 (8.0×)</td>' in page and '<td class="number">error: torch.onnx.export</td>' in page
    assert "<b>boom</b>" not in page and "&lt;b&gt;boom&lt;/b&gt;" in page  # the reason, escaped, in the cases not run
    assert "<p>runs everywhere: window; fastest: window under onnxruntime, 0.125 ms.</p>" in page


def _bars(ax) -> dict[str, object]:
    return {p.get_gid(): p for p in ax.patches if p.get_gid()}


def _texts(ax, prefix: str) -> dict[str, object]:
    return {t.get_gid().removeprefix(prefix): t for t in ax.texts if (t.get_gid() or "").startswith(prefix)}


def test_the_figure_draws_a_bar_per_runtime_and_a_cross_where_it_did_not_run(runtimes_csv):
    fig = runtimes_figure(load_results([runtimes_csv]))
    panels = {ax.get_title().replace("\n", " · "): ax for ax in fig.axes}
    assert sorted(panels) == sorted([FORWARD_TITLE, BACKWARD_TITLE])
    forward, backward = panels[FORWARD_TITLE], panels[BACKWARD_TITLE]
    assert forward.get_yscale() == "log" and [t.get_text() for t in forward.get_xticklabels()] == list(FORWARD)
    bars = _bars(forward)
    ok = {f"{r}|{v}": ms for v, cells in FORWARD.items() for r, ms in cells.items() if not isinstance(ms, tuple)}
    assert sorted(bars) == sorted(ok)
    for gid, bar in bars.items():
        assert bar.get_y() + bar.get_height() == pytest.approx(ok[gid])  # the bar reaches its median
        assert mcolors.same_color(bar.get_facecolor(), RUNTIME_COLORS[gid.split("|")[0]])
    ratios = {gid: t.get_text() for gid, t in _texts(forward, "ratio|").items()}
    assert ratios["export|im2col"] == "20×" and ratios["onnxruntime|window"] == "8.0×"
    assert not [gid for gid in ratios if gid.startswith("eager|") or gid.endswith("|natten")]  # no eager time: no ratio
    crosses = _texts(forward, "not-run|")
    assert sorted(crosses) == ["eager|natten", "export|natten", "export|slide", "onnxruntime|im2col", "onnxruntime|natten"]
    assert all(t.get_text() == "×" and t.get_position()[1] == forward.get_ylim()[0] for t in crosses.values())
    assert sorted(_bars(backward)) == ["eager|im2col", "inductor|im2col"]
    assert _bars(backward)["inductor|im2col"].get_height() > 0  # 10 ms, a power of ten: the axis starts below it
    assert sorted(_texts(backward, "not-run|")) == ["export|im2col", "onnxruntime|im2col"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["eager", "inductor", "export", "onnxruntime", "did not run there"]
    footnote = "\n".join(t.get_text() for t in fig.texts)
    assert "7 variant × runtime slot(s) drew a grey ×" in footnote and "slide: error" in footnote


def test_the_figure_shows_at_most_a_few_shapes_and_counts_the_others(tmp_path):
    rows = []
    for res in (7, 14, 21, 28, 35, 42, 49, 56):
        rows += [row(v, res=res, runtime=r, iqr_ms=0.0) for v in ("im2col", "window") for r in ("eager", "inductor")]
    fig = runtimes_figure(load_results([write_csv(tmp_path / "many.csv", rows)]))
    assert len(fig.axes) == MAX_PANELS
    assert [ax.get_title().split(" · ")[0] for ax in fig.axes] == [f"{r}×{r}" for r in (21, 28, 35, 42, 49, 56)]  # the largest
    assert "2 more case shape(s) are not shown" in "\n".join(t.get_text() for t in fig.texts)


def test_the_figure_is_registered_and_saves(runtimes_csv, tmp_path):
    assert OPTIONAL_FIGURES["runtimes"] is runtimes_figure  # make_figures draws it (it returns None with one runtime)
    path = tmp_path / "runtimes.png"
    runtimes_figure(load_results([runtimes_csv])).savefig(path, dpi=60)
    assert path.read_bytes().startswith(b"\x89PNG")
