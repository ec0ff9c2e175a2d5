import json
import subprocess
import sys

import pandas as pd
import pytest

from bench import results
from bench.results import ResultsError


def _row(**changes):
    row = {column: "" for column in results.COLUMNS}
    row.update(run_id="r1", variant="im2col", family="local-zero-pad", device="cpu", dtype="float32", batch=1, height=14,
               width=14, heads=2, head_dim=32, kernel_size=7, runtime="eager", status="ok", median_ms=1.5, iqr_ms=0.1,
               n_measurements=5, threads=2)
    row.update(changes)
    return row


def test_append_and_load_round_trip_with_types(tmp_path):
    path = tmp_path / "r.csv"
    results.append_rows(path, [_row()])
    results.append_rows(path, [_row(variant="slide", status="skipped", median_ms=None, reason="why, with a comma")])
    frame = results.load(path)
    assert list(frame.columns) == [*results.COLUMNS, "block_ms"]  # the block times beside them: none kept here
    assert frame["block_ms"].isna().all()
    assert frame["batch"].dtype == "int64" and frame["median_ms"].dtype == "float64"
    assert frame["runtime"].dtype == "string" and (frame["runtime"] == "eager").all()
    assert frame.loc[1, "reason"] == "why, with a comma" and pd.isna(frame.loc[1, "median_ms"])
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]  # no temporary file left behind


def test_load_rejects_foreign_csv(tmp_path):
    path = tmp_path / "foreign.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match="missing column"):
        results.load(path)


def test_load_rejects_unknown_status(tmp_path):
    path = tmp_path / "r.csv"
    results.append_rows(path, [_row(status="great")])
    with pytest.raises(ResultsError, match="unknown status 'great'"):
        results.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="no results file"):
        results.load(tmp_path / "nope.csv")


CONCURRENT_WRITER = """
import json, sys
from bench import results
path, writer, row = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for index in range(40):
    results.append_rows(path, [{**row, "run_id": f"{writer}-{index}"}])
"""


def test_concurrent_writers_lose_no_row(tmp_path):
    """Four processes append to one CSV at once (two sweeps sharing --out): every row lands once."""
    path = tmp_path / "shared.csv"
    row = json.dumps(_row())
    writers = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(path), str(w), row]) for w in range(4)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    run_ids = list(results.load(path)["run_id"])
    assert sorted(run_ids) == sorted(f"{w}-{i}" for w in range(4) for i in range(40))
    assert [p.name for p in tmp_path.iterdir()] == ["shared.csv"]
