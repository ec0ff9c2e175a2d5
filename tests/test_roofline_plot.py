"""The roofline figure from a small results frame (no sweep needed)."""

import pandas as pd
import pytest

from bench.measure import overhead
from bench.measure.settings import Settings
from bench.plots.roofline import roofline_points, save_roofline


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "variant": ["im2col", "local-halo", "local-halo", "slide"],
        "compiled": pd.array([False, False, True, False], dtype="boolean"),
        "status": ["ok", "ok", "ok", "error"],
        "device": ["cpu"] * 4,
        "dtype": ["float32"] * 4,
        "gflop_per_s": [0.5, 5.0, 6.0, None],
        "arithmetic_intensity": [12.25] * 4,
        "peak_gflop_per_s": [80.0] * 4,
        "peak_gb_per_s": [15.0] * 4,
    })


def test_points_keep_ok_rows_and_label_compiled_ones():
    points = roofline_points(_frame())
    assert list(points["label"]) == ["im2col", "local-halo", "local-halo (compiled)"]


def test_figure_is_written(tmp_path):
    path = save_roofline(_frame(), tmp_path)
    assert path == tmp_path / "roofline.png" and path.stat().st_size > 10_000


def test_no_plottable_rows_is_a_clear_error(tmp_path):
    frame = _frame().assign(status="error")
    with pytest.raises(ValueError, match="no ok rows"):
        save_roofline(frame, tmp_path)


def test_overhead_floor_is_below_a_real_case():
    settings = Settings(threads=1, warmup_s=0.0, min_run_s=0.01, max_run_s=0.05)
    empty = overhead.empty_callable_us(settings)
    tiny = overhead.tiny_case_timings(settings, ["im2col"])["im2col"]
    assert 0 < empty.median_ms < tiny.median_ms  # an empty call costs less than any attention call
