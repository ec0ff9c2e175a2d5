"""One typed record from worker to row: a worker's Measured record is checked field by field on receipt, and the row is
built from (case, fingerprint, record) in one place, where gflop, throughput and the roofline are derived once."""

from __future__ import annotations

import json

import pytest

from attention_variants.case import Case
from bench.execution.protocol import ProtocolError, decode_message, encode_result
from bench.execution.rows import make_row
from bench.measure import roofline
from bench.measure.record import Measured
from bench.models.measure import ModelCase
from bench.results.schema import columns

CASE = Case(variant="im2col", batch=2, height=9, width=9, heads=2, head_dim=8, kernel_size=3)
FINGERPRINT = {"threads": 1, "host": "h", "cpu": "c", "gpu": "", "torch_version": "t", "natten_version": "n", "git_sha": "g",
               "allocator": "steady"}
PEAKS = {"cpu/float32": [100.0, 10.0]}


def test_a_record_crosses_the_pipe_unchanged():
    sent = Measured("ok", "fine", 2.0, 0.1, 1.9, 3, (1.9, 2.0, 2.1), peak_mem_mb=5.0, backend="x", params=None)
    assert decode_message(encode_result(sent, "t"), "t") == sent


@pytest.mark.parametrize("fields,problem", [
    ({"status": "ok", "run_id": "mine"}, "may not have: run_id"),  # the parent's columns are not a worker's to set
    ({"status": "ok", "gflop_per_s": 1.0}, "may not have: gflop_per_s"),  # derived: only the row builder makes it
    ({"status": "ok", "median_ms": True}, "median_ms of a result has a bool"),
    ({"status": "ok", "n_measurements": 2.5}, "n_measurements of a result has a float"),
    ({"status": "ok", "backend": 3}, "backend of a result has a int"),
    ({"status": "fine"}, "no valid status"),
])
def test_a_record_that_breaks_its_types_is_refused(fields, problem):
    with pytest.raises(ProtocolError, match=problem):
        decode_message(json.dumps({**fields, "token": "t"}), "t")


def test_the_row_derives_its_numbers_once_from_the_case_and_the_record():
    measured = Measured("ok", median_ms=2.0, iqr_ms=0.1, min_ms=1.9, n_measurements=3, block_ms=(1.9, 2.0, 2.1))
    row = make_row(CASE, measured, "run", FINGERPRINT, PEAKS, round_number=2)
    assert set(row) - {"block_ms"} <= set(columns()) and row["block_ms"] == [1.9, 2.0, 2.1] and row["round"] == 2
    gflop = roofline.analytic_gflop(CASE)
    assert row["gflop"] == gflop and row["gflop_per_s"] == pytest.approx(gflop / 2e-3)
    assert row["throughput_per_s"] == pytest.approx(2 / 2e-3) and row["peak_gflop_per_s"] == 100.0
    assert row["roofline_fraction"] == pytest.approx(row["gflop_per_s"] / min(100.0, row["arithmetic_intensity"] * 10.0))
    skipped = make_row(CASE, Measured("skipped", "why"), "run", FINGERPRINT, PEAKS)
    assert skipped["gflop"] == gflop and "gflop_per_s" not in skipped and "roofline_fraction" not in skipped


def test_a_model_row_takes_the_counted_gflop_and_no_roofline():
    measured = Measured("ok", median_ms=10.0, gflop=4.5, params=28_000_000)
    row = make_row(ModelCase("swin-t"), measured, "run", FINGERPRINT, PEAKS)
    assert (row["scope"], row["variant"], row["gflop"], row["params"]) == ("model", "swin-t", 4.5, 28_000_000)
    assert row["gflop_per_s"] == pytest.approx(450.0) and "roofline_fraction" not in row
