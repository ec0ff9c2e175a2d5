"""The roofline figure from small results files (no sweep needed): the variants' colours, both layouts."""

import pytest
from matplotlib import colors as mcolors

from bench.analysis.frames import load_results
from bench.measure import overhead
from bench.measure.settings import Settings
from bench.plots.roofline import roofline_figure, roofline_figure_or_none, roofline_points
from bench.plots.style import FIXED
from synthetic_results import row, write_csv

ROOF = dict(peak_gflop_per_s=80.0, peak_gb_per_s=15.0, bound="memory")


def _results(tmp_path, kernel_sizes=(7,)):
    rows = []
    for k in kernel_sizes:
        intensity = 0.25 * k * k
        rows += [row("im2col", kernel_size=k, gflop_per_s=0.5, arithmetic_intensity=intensity, **ROOF),
                 row("slide", kernel_size=k, gflop_per_s=2.0, arithmetic_intensity=intensity, **ROOF),
                 row("slide", kernel_size=k, runtime="inductor", gflop_per_s=3.0, arithmetic_intensity=intensity, **ROOF),
                 row("window", kernel_size=k, status="error", reason="boom")]
    return load_results([write_csv(tmp_path / "r.csv", rows)])


def test_points_keep_ok_rows_and_label_compiled_ones(tmp_path):
    assert sorted(roofline_points(_results(tmp_path))["label"]) == ["im2col", "slide", "slide (inductor)"]


def test_one_kernel_size_shows_the_fraction_of_the_roof_in_the_variants_colours(tmp_path):
    fig = roofline_figure(_results(tmp_path))
    [ax] = [ax for ax in fig.axes if ax.has_data()]
    points = {c.get_gid(): c for c in ax.collections}
    assert sorted(points) == ["im2col", "slide", "slide (inductor)"]
    roof = min(80.0, 0.25 * 49 * 15.0)
    assert points["slide"].get_offsets()[0][0] == pytest.approx(2.0 / roof)  # achieved / roof at its intensity
    assert mcolors.same_color(points["slide"].get_edgecolors()[0], FIXED["slide"].color)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["im2col", "slide", "slide (inductor)"]
    title = fig.texts[0].get_text()
    assert "one kernel size (7)" in title and "Synthetic CPU" in title  # the machine and the run are named
    assert "window: error" in "\n".join(t.get_text() for t in fig.texts)  # what did not run is in the footnote


def test_swept_kernel_sizes_give_the_roofline_proper(tmp_path):
    fig = roofline_figure(_results(tmp_path, kernel_sizes=(3, 7, 11)))
    [ax] = [ax for ax in fig.axes if ax.has_data()]
    lines = {line.get_gid(): line for line in ax.lines if line.get_gid() not in (None, "roof")}
    assert list(lines["slide"].get_xdata()) == [0.25 * 9, 0.25 * 49, 0.25 * 121]  # through its kernel sizes
    assert mcolors.same_color(lines["im2col"].get_color(), FIXED["im2col"].color)


def test_no_plottable_rows_is_no_figure_or_a_clear_error(tmp_path):
    frame = _results(tmp_path)
    frame = frame.assign(status="error")
    assert roofline_figure_or_none(frame) is None
    with pytest.raises(ValueError, match="no ok rows"):
        roofline_figure(frame)


def test_overhead_floor_is_below_a_real_case():
    settings = Settings(threads=1, warmup_s=0.0, min_run_s=0.01, max_run_s=0.05)
    empty = overhead.empty_callable_us(settings)
    tiny = overhead.tiny_case_timings(settings, ["im2col"])["im2col"]
    assert 0 < empty.median_ms < tiny.median_ms  # an empty call costs less than any attention call
