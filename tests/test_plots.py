"""Figures: what they show (axes, one line per variant and batch, log scales, styles), not only files."""

from __future__ import annotations

import matplotlib.colors as mcolors
import matplotlib.image as mimage
import pandas as pd
import pytest

import run_bench
from bench.analysis.frames import load_results, output_folder
from bench.plots import figures as plots
from bench.plots.style import FIXED, variant_styles
from bench.results import append_rows
from bench.results.schema import TOLERANCE
from synthetic_results import grid_rows, median_ms, row, write_csv

VARIANTS = ["im2col", "slide", "window", "natten"]
NATTEN_SKIP = "natten: this case is too large for the test"


@pytest.fixture
def one_run(tmp_path):
    """A CSV: 4 variants x 3 resolutions x 2 batches, natten skipped at 56x56."""
    rows = [r for r in grid_rows(VARIANTS, [14, 28, 56], [1, 2]) if not (r["variant"] == "natten" and r["height"] == 56)]
    rows += [row("natten", b, 56, status="skipped", reason=NATTEN_SKIP) for b in (1, 2)]
    return write_csv(tmp_path / "one.csv", rows)


def data_lines(ax):
    return [line for line in ax.lines if line.get_gid() and line.get_gid().startswith(("batch=", "pixels="))]


def figure_text(fig) -> str:
    return "\n".join(text.get_text() for text in fig.texts)


def test_latency_is_log_log_with_a_line_per_variant_and_batch(one_run):
    frame = load_results([one_run])
    fig = plots.latency_figure(frame)
    [ax] = [ax for ax in fig.axes if ax.has_data()]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "resolution" in ax.get_xlabel() and "ms" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["14×14", "28×28", "56×56"]
    lines = data_lines(ax)
    assert sorted((line.get_label(), line.get_gid()) for line in lines) == sorted(
        (v, f"batch={b}") for v in VARIANTS for b in (1, 2))
    for line in lines:
        batch = int(line.get_gid().split("=")[1])
        sides = [int(round(p ** 0.5)) for p in line.get_xdata()]
        expected = [median_ms(line.get_label(), batch, s, s) for s in sides]
        assert list(line.get_ydata()) == pytest.approx(expected)
        assert mcolors.same_color(line.get_color(), FIXED[line.get_label()].color)
        assert line.get_marker() == FIXED[line.get_label()].marker
    natten = [line for line in lines if line.get_label() == "natten"]
    assert all(len(line.get_xdata()) == 2 for line in natten)  # 56x56 was skipped


def test_skipped_cases_are_only_in_the_footnote(one_run):
    fig = plots.latency_figure(load_results([one_run]))
    [ax] = [ax for ax in fig.axes if ax.has_data()]
    natten = [line for line in ax.lines if line.get_label() == "natten"]
    assert natten and all(56 * 56 not in line.get_xdata() for line in natten)  # no point at a made-up value
    assert ax.get_ylim()[0] > 0.5 * min(line.get_ydata().min() for line in data_lines(ax))  # nor room kept for one
    assert "natten: skipped" in figure_text(fig) and NATTEN_SKIP in figure_text(fig)


def test_title_names_the_machine_and_the_run(one_run):
    text = figure_text(plots.throughput_figure(load_results([one_run])))
    assert "Synthetic CPU of synthetic-a" in text and "20260101-000000-aaaaaa" in text


def test_throughput_and_memory_axes(one_run):
    frame = load_results([one_run])
    throughput = next(ax for ax in plots.throughput_figure(frame).axes if ax.has_data())
    assert throughput.get_xscale() == "log" and "batch" in throughput.get_xlabel()
    assert "images/s" in throughput.get_ylabel()
    assert {line.get_gid() for line in data_lines(throughput)} == {"pixels=196", "pixels=784", "pixels=3136"}
    memory = next(ax for ax in plots.memory_figure(frame).axes if ax.has_data())
    assert memory.get_yscale() == "log" and "MiB" in memory.get_ylabel()
    assert len(data_lines(memory)) == len(VARIANTS) * 2


def test_speedup_bars_start_at_one_and_reach_the_ratio(one_run):
    fig = plots.speedup_figure(load_results([one_run]))
    [ax] = [ax for ax in fig.axes if ax.has_data()]
    assert ax.get_yscale() == "log" and "im2col" in ax.get_ylabel()
    assert any(line.get_gid() == "reference" and list(line.get_ydata()) == [1, 1] for line in ax.lines)
    bars = {variant: [p for p in ax.patches if p.get_gid() == variant] for variant in ("slide", "window", "natten")}
    assert len(bars["slide"]) == 6 and len(bars["window"]) == 6 and len(bars["natten"]) == 4  # 2 natten skipped
    expected = {"slide": 10.0 / 5.0, "window": 10.0 / 1.0, "natten": 10.0 / 20.0}
    for variant, patches in bars.items():
        for patch in patches:
            assert patch.get_y() == pytest.approx(1.0)
            assert patch.get_y() + patch.get_height() == pytest.approx(expected[variant])
            assert mcolors.same_color(patch.get_facecolor()[:3], FIXED[variant].color)
    assert not [p for p in ax.patches if p.get_gid() == "im2col"]  # the reference is the 1x line


def test_speedup_needs_the_reference(tmp_path):
    csv = write_csv(tmp_path / "r.csv", grid_rows(["slide", "window"], [14], [1]))
    assert plots.speedup_figure(load_results([csv])) is None


def test_accuracy_shows_each_case_against_the_tolerance(tmp_path):
    rows = grid_rows(["im2col", "window"], [14, 28], [1])
    rows.append(row("slide", status="mismatch", reason="max_abs_err 0.5 above 1e-4", max_abs_err=0.5))
    fig = plots.accuracy_figure(load_results([write_csv(tmp_path / "r.csv", rows)]))
    [ax] = [ax for ax in fig.axes if ax.has_data()]
    assert ax.get_xscale() == "log" and "oracle" in ax.get_xlabel()
    assert [t.get_text().split(" (")[0] for t in ax.get_yticklabels()] == ["im2col", "slide", "window"]  # a row each
    [tolerance] = [line for line in ax.lines if line.get_gid() == "tolerance"]
    assert list(tolerance.get_xdata()) == [TOLERANCE["float32"]] * 2
    points = {c.get_gid(): c for c in ax.collections}
    assert len(points["im2col"].get_offsets()) == 2 and len(points["window"].get_offsets()) == 2
    assert points["slide"].get_offsets()[0][0] == pytest.approx(0.5)
    assert points["slide"].get_facecolors().size == 0 or points["slide"].get_facecolors()[0][3] == 0  # hollow


def test_accuracy_shows_each_rows_own_tolerance(tmp_path):
    """Rows that record their tolerance (schema 3) get a dash each at it, beside their point; no dtype line."""
    rows = [row("im2col", res=14, tolerance=2e-6), row("im2col", res=28, tolerance=3e-6),
            row("slide", status="mismatch", reason="mean_abs_err above", max_abs_err=1e-6, tolerance=4e-6)]
    fig = plots.accuracy_figure(load_results([write_csv(tmp_path / "r.csv", rows)]))
    [ax] = [ax for ax in fig.axes if ax.has_data()]
    assert not [line for line in ax.lines if line.get_gid() == "tolerance"]
    [dashes] = [c for c in ax.collections if c.get_gid() == "tolerance"]
    points = {c.get_gid(): c for c in ax.collections}
    ys = [y for name in ("im2col", "slide") for _, y in points[name].get_offsets()]
    assert sorted(map(tuple, dashes.get_offsets())) == sorted(zip([2e-6, 3e-6, 4e-6], ys))
    assert "mean-error bound" in figure_text(fig)


def test_several_csvs_side_by_side_one_column_per_machine(tmp_path):
    first = write_csv(tmp_path / "a.csv", grid_rows(VARIANTS, [14, 28], [1]))
    second = write_csv(tmp_path / "b.csv", grid_rows(VARIANTS, [14, 28], [1], host="synthetic-b",
                                                        run_id="20260102-000000-bbbbbb"))
    frame = load_results([first, second])
    fig = plots.latency_figure(frame)
    panels = [ax for ax in fig.axes if ax.has_data()]
    assert len(panels) == 2
    assert "synthetic-a" in panels[0].get_title() and "synthetic-b" in panels[1].get_title()
    assert panels[0].get_shared_y_axes().joined(panels[0], panels[1])
    assert output_folder(frame) == "20260101-000000-aaaaaa+20260102-000000-bbbbbb"


def test_an_axis_varied_at_fixed_resolution_gets_its_own_panels(tmp_path):
    rows = grid_rows(["im2col", "slide"], [14, 28], [1]) + grid_rows(["im2col", "slide"], [14, 28], [1], kernel_size=3)
    fig = plots.latency_figure(load_results([write_csv(tmp_path / "r.csv", rows)]))
    titles = sorted(ax.get_title() for ax in fig.axes if ax.has_data())
    assert len(titles) == 2 and "kernel 3" in titles[0] and "kernel 7" in titles[1]


def test_an_axis_tied_to_the_resolution_is_named_in_the_ticks(tmp_path):
    rows = [row(v, 1, res, heads=heads) for v in ("im2col", "slide") for res, heads in ((56, 3), (28, 6))]
    fig = plots.latency_figure(load_results([write_csv(tmp_path / "r.csv", rows)]))
    [ax] = [ax for ax in fig.axes if ax.has_data()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["28×28\nheads 6", "56×56\nheads 3"]


def test_variant_styles_are_fixed_deterministic_and_distinct():
    names = ["im2col", "natten", "plugin-a", "plugin-b", "zzz"]
    styles = variant_styles(names)
    assert styles["im2col"] == FIXED["im2col"] and styles["natten"] == FIXED["natten"]
    assert styles == variant_styles(list(reversed(names)))
    assert len({(s.color, s.marker) for s in styles.values()}) == len(names)
    assert variant_styles(["plugin-a"])["plugin-a"] == styles["plugin-a"]  # its own look, whatever else is plotted
    many = variant_styles([f"plugin-{i}" for i in range(60)])
    assert len(set(many.values())) == 60


def test_plot_command_writes_png_and_svg_into_plots_run_id(one_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCH_PLOTS_DIR")  # the default: plots/ of the working directory
    assert run_bench.main(["plot", str(one_run), "--formats", "png"]) == 0
    folder = tmp_path / "plots" / "20260101-000000-aaaaaa"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{name}.png" for name in [*plots.FIGURES, "throughput"])
    height, width, _ = mimage.imread(folder / "latency.png").shape
    assert height > 300 and width > 500
    assert str(folder.relative_to(tmp_path) / "latency.png") in capsys.readouterr().out
    out = tmp_path / "svgs"
    assert run_bench.main(["plot", str(one_run), "--out-dir", str(out), "--formats", "svg"]) == 0
    assert (out / "speedup.svg").read_text().lstrip().startswith("<?xml")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_only_failed_rows_is_one_clear_line(tmp_path, capsys):
    csv = write_csv(tmp_path / "failed.csv", [row(v, status="error", reason="RuntimeError: boom") for v in VARIANTS])
    assert run_bench.main(["plot", str(csv)]) == 2
    err = _one_line_error(capsys)
    assert "no ok rows" in err and "4 error" in err and "boom" in err


def test_missing_column_and_missing_file_are_one_clear_line(tmp_path, capsys):
    csv = write_csv(tmp_path / "r.csv", grid_rows(["im2col"], [14], [1]))
    pd.read_csv(csv).drop(columns=["median_ms"]).to_csv(tmp_path / "cut.csv", index=False)
    assert run_bench.main(["plot", str(tmp_path / "cut.csv")]) == 2
    assert "missing column(s) median_ms" in _one_line_error(capsys)
    assert run_bench.main(["plot", str(tmp_path / "nope.csv")]) == 2
    assert "no results file" in _one_line_error(capsys)
    (tmp_path / "empty.csv").write_text(",".join(pd.read_csv(csv).columns) + "\n")
    assert run_bench.main(["plot", str(tmp_path / "empty.csv")]) == 2
    assert "no rows" in _one_line_error(capsys)


def test_bad_format_is_a_usage_error(one_run):
    with pytest.raises(SystemExit) as exit_info:
        run_bench.main(["plot", str(one_run), "--formats", "gif"])
    assert exit_info.value.code == 2


def test_a_device_where_nothing_ran_is_an_empty_panel_that_says_so(tmp_path):
    rows = grid_rows(["im2col", "window"], [14], [1])
    rows += [row(v, device="cuda", device_name="cuda (not available)", status="skipped", reason="no cuda here")
             for v in ("im2col", "window")]
    frame = load_results([write_csv(tmp_path / "r.csv", rows)])
    for name, build in plots.FIGURES.items():
        fig = build(frame)
        fig.savefig(tmp_path / f"{name}.png")  # draws: a log axis with no data must not fail
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        assert len(titles) == 2 and "cuda (not available)" in titles[1], name
    latency = plots.latency_figure(frame)
    cuda = [ax for ax in latency.axes if "cuda" in ax.get_title()][0]
    assert not cuda.lines and "nothing ran here" in cuda.texts[0].get_text()


# A merged file of a cluster run: each host's medians are the synthetic ones times its factor.
HOST_FACTOR = {"node-a": 1.0, "node-b": 2.0, "gpu-c": 0.25}
GPU = dict(device="cuda", device_name="Synthetic GPU")


def _host_rows(host: str, resolutions: list[int], batches: list[int], skip: str = "", **overrides) -> list[dict]:
    """Return ok rows of VARIANTS on host (its medians scaled by HOST_FACTOR), `skip` skipped there."""
    rows = []
    for variant in VARIANTS:
        for res in resolutions:
            for batch in batches:
                if variant == skip:
                    rows.append(row(variant, batch, res, host=host, status="skipped", reason=f"{variant}: not on {host}", **overrides))
                else:
                    rows.append(row(variant, batch, res, host=host, **overrides,
                                    median_ms=median_ms(variant, batch, res, res) * HOST_FACTOR[host]))
    return rows


@pytest.fixture
def merged(tmp_path):
    """One CSV merged from three hosts (appended one after the other): two CPU nodes, a GPU node at 28 and 56 only."""
    path = tmp_path / "merged.csv"
    append_rows(path, _host_rows("node-a", [14, 28, 56], [1, 2]))
    append_rows(path, _host_rows("node-b", [14, 28, 56], [1, 2], skip="natten"))
    append_rows(path, _host_rows("gpu-c", [28, 56], [1, 2], **GPU))
    return path


def test_a_merged_file_gets_one_column_of_panels_per_machine(merged):
    frame = load_results([merged])
    fig = plots.latency_figure(frame)
    panels = [ax for ax in fig.axes if ax.has_data()]
    assert [ax.get_title().split("\n")[0] for ax in panels] == [
        "Synthetic CPU of node-a on node-a", "Synthetic CPU of node-b on node-b", "Synthetic GPU on gpu-c"]
    for ax in panels:
        host = ax.get_title().split("\n")[0].split(" on ")[-1]
        for line in data_lines(ax):  # each column holds only its machine's medians
            batch = int(line.get_gid().split("=")[1])
            sides = [int(round(p ** 0.5)) for p in line.get_xdata()]
            expected = [median_ms(line.get_label(), batch, s, s) * HOST_FACTOR[host] for s in sides]
            assert list(line.get_ydata()) == pytest.approx(expected)
    assert "3 machines side by side" in figure_text(fig)
    speedup = plots.speedup_figure(frame)  # the reference is matched within each machine: one bar per case each
    slide_bars = [[p for p in ax.patches if p.get_gid() == "slide"] for ax in speedup.axes if ax.has_data()]
    assert [len(bars) for bars in slide_bars] == [6, 6, 4]
    assert all(p.get_y() + p.get_height() == pytest.approx(2.0) for bars in slide_bars for p in bars)


def _bars(fig) -> list[tuple[str, object]]:
    """Return (panel title, bar) for every bar of the machines figure."""
    return [(ax.get_title(), p) for ax in fig.axes for p in ax.patches if p.get_gid()]


def test_machines_figure_shows_each_machines_median_in_its_colour(merged):
    fig = plots.OPTIONAL_FIGURES["machines"](load_results([merged]))
    titles = [ax.get_title() for ax in fig.axes]
    # the shapes measured on all three machines (28 and 56), the largest first; at most four panels
    assert [t.split("\n")[0] for t in titles] == [f"{r}×{r} · batch {b} · float32 forward" for r, b in ((56, 2), (56, 1), (28, 2), (28, 1))]
    colours: dict[str, set] = {}
    for title, bar in _bars(fig):
        host, device, variant = bar.get_gid().split("|")
        res, batch = int(title.split("×")[0]), int(title.split("batch ")[1].split(" ")[0])
        assert bar.get_x() + bar.get_width() == pytest.approx(median_ms(variant, batch, res, res) * HOST_FACTOR[host])
        assert device == ("cuda" if host == "gpu-c" else "cpu")
        assert bool(bar.get_hatch()) == (device == "cuda")  # the devices told apart
        colours.setdefault(host, set()).add(mcolors.to_hex(bar.get_facecolor()))
    assert all(len(c) == 1 for c in colours.values()) and len(set.union(*colours.values())) == 3  # one colour each
    counts = {host: sum(bar.get_gid().startswith(host + "|") for _, bar in _bars(fig)) for host in HOST_FACTOR}
    assert counts == {"node-a": 16, "node-b": 12, "gpu-c": 16}  # natten did not run on node-b: no bar
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"node-a (Synthetic CPU of node-a)", "node-b (Synthetic CPU of node-b)", "gpu-c (Synthetic GPU)"} <= legend
    text = figure_text(fig)
    assert "natten: skipped" in text and "not on node-b" in text and "2 more case shape(s)" in text


def test_machines_figure_needs_two_machines(one_run, tmp_path):
    assert plots.OPTIONAL_FIGURES["machines"](load_results([one_run])) is None
    # two files of one machine are still one machine
    again = write_csv(tmp_path / "again.csv", grid_rows(VARIANTS, [14], [1], run_id="20260102-000000-bbbbbb"))
    assert plots.OPTIONAL_FIGURES["machines"](load_results([one_run, again])) is None


def test_machines_figure_takes_a_machines_latest_run(merged, tmp_path):
    """The same machine in two files (or runs): the latest run's median, not two bars."""
    later = tmp_path / "later.csv"
    append_rows(later, [row(v, 1, 56, host="node-b", run_id="20260103-000000-cccccc", timestamp="2026-01-03T00:00:00+0000",
                            median_ms=7.0) for v in VARIANTS])
    fig = plots.OPTIONAL_FIGURES["machines"](load_results([merged, later]))
    node_b = [bar for title, bar in _bars(fig) if title.startswith("56×56 · batch 1") and bar.get_gid().startswith("node-b|")]
    assert len(node_b) == len(VARIANTS)
    assert all(bar.get_x() + bar.get_width() == pytest.approx(7.0) for bar in node_b)


@pytest.mark.slow  # every figure of a merged file, drawn and saved (the machines figure is checked in-process above)
def test_plot_command_draws_the_machines_figure_of_a_merged_file(merged, tmp_path, capsys):
    assert run_bench.main(["plot", str(merged), "--out-dir", str(tmp_path / "out"), "--formats", "png"]) == 0
    assert (tmp_path / "out" / "machines.png").is_file()
    assert "machines" in capsys.readouterr().out
