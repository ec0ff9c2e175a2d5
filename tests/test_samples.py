"""Raw samples: every timed block's time is kept beside the CSV, keyed by its row, and survives resume and merge."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.analysis.verdict import _block_interval
from bench.execution.protocol import ProtocolError, decode_message
from bench.results import load, load_samples
from bench.results.samples import samples_path
from bench.results.selection import median_over_rounds, row_key
from conftest import run_main

FAST = ["--variants", "im2col,slide", "--resolutions", "9,11", "--kernel-sizes", "3", "--min-run-s", "0.01",
        "--max-run-s", "0.03", "--threads", "1", "--cases-per-worker", "0", "--no-plots"]


def _blocks_per_row(csv_path) -> pd.DataFrame:
    rows, samples = load(csv_path), load_samples(csv_path)
    counts = samples.groupby(list(row_key()), dropna=False)["block_ms"].agg(["size", "median"]).reset_index()
    return rows.merge(counts.astype({c: rows[c].dtype for c in row_key()}), on=list(row_key()), how="left")


def test_every_timed_block_is_kept_and_the_row_is_its_statistic(tmp_path):
    out = tmp_path / "run.csv"
    assert run_main([*FAST, "--repeats", "2", "--out", str(out)])[0] == 0
    assert samples_path(out).name == "run.samples.tsv" and samples_path(out).is_file()
    joined = _blocks_per_row(out)
    assert len(joined) == 8 and (joined["status"] == "ok").all()
    assert (joined["size"] == joined["n_measurements"]).all()  # one line per timed block, in both rounds
    assert joined["median"].to_numpy() == pytest.approx(joined["median_ms"].to_numpy(), rel=1e-9)


def test_a_resumed_sweep_adds_the_blocks_of_the_rows_it_adds(tmp_path):
    out = tmp_path / "run.csv"
    assert run_main([*FAST, "--out", str(out)])[0] == 0
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-2]) + "\n")  # the last two rows were never written (a killed sweep)
    assert run_main([*FAST, "--resume", str(out)])[0] == 0
    joined = _blocks_per_row(out)
    assert len(joined) == 4 and (joined["size"] == joined["n_measurements"]).all()


def test_merge_carries_the_blocks_with_their_rows(tmp_path):
    first, second, merged = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "merged.csv"
    for path in (first, second):
        assert run_main([*FAST, "--out", str(path)])[0] == 0
    assert run_main(["merge", str(first), str(second), str(first), "--out", str(merged)])[0] == 0
    joined = _blocks_per_row(merged)
    assert len(joined) == 8 and (joined["size"] == joined["n_measurements"]).all()
    assert len(load_samples(merged)) == len(load_samples(first)) + len(load_samples(second))  # a file given twice once


def test_a_csv_without_samples_still_loads_and_merges(tmp_path):
    out, merged = tmp_path / "run.csv", tmp_path / "merged.csv"
    assert run_main([*FAST, "--out", str(out)])[0] == 0
    samples_path(out).unlink()
    assert len(load(out)) == 4 and load_samples(out).empty and list(load_samples(out).columns)[-1] == "block_ms"
    assert run_main(["merge", str(out), "--out", str(merged)])[0] == 0
    assert len(load(merged)) == 4 and not samples_path(merged).exists()


def test_a_worker_cannot_send_block_times_that_are_not_numbers():
    line = json.dumps({"status": "ok", "reason": "", "block_ms": ["1.0"], "token": "t"})
    with pytest.raises(ProtocolError, match="block_ms"):
        decode_message(line, "t")
    assert decode_message(json.dumps({"status": "ok", "reason": "", "block_ms": [1.0, 2], "token": "t"}), "t").block_ms == (1.0, 2.0)


def test_rounds_pool_their_blocks(tmp_path):
    out = tmp_path / "run.csv"
    assert run_main([*FAST, "--repeats", "2", "--out", str(out)])[0] == 0
    rows = load(out)
    assert all(isinstance(blocks, tuple) and len(blocks) == n for blocks, n in zip(rows["block_ms"], rows["n_measurements"]))
    pooled = median_over_rounds(rows)
    assert len(pooled) == 4 and (pooled["rounds"] == 2).all()
    for _, row in pooled.iterrows():
        rounds = rows[(rows["variant"] == row["variant"]) & (rows["height"] == row["height"])]
        blocks = pd.Series([ms for times in rounds["block_ms"] for ms in times])
        assert row["median_ms"] == pytest.approx(blocks.median()) and row["n_measurements"] == len(blocks)
        assert row["iqr_ms"] == pytest.approx(blocks.quantile(0.75) - blocks.quantile(0.25)) and row["min_ms"] == blocks.min()
    # Without the blocks (a file from before they were kept): the median of the round medians.
    samples_path(out).unlink()
    old = load(out)
    expected = old.groupby(["variant", "height"])["median_ms"].median()
    assert median_over_rounds(old).set_index(["variant", "height"])["median_ms"].to_dict() == pytest.approx(expected.to_dict())


def test_one_rounds_interval_is_the_quartiles_of_its_blocks():
    rows = pd.DataFrame([
        {"variant": "slide", "median_ms": 10.0, "iqr_ms": 99.0, "min_ms": 1.0, "block_ms": (9.0, 10.0, 11.0, 12.0, 8.0)},
        {"variant": "im2col", "median_ms": 30.0, "iqr_ms": 99.0, "min_ms": 1.0, "block_ms": (29.0, 30.0, 31.0, 32.0, 28.0)},
    ])
    low, high = _block_interval(rows)  # the IQR columns would make it 1.0 to 60: the blocks say 29 / 11 to 31 / 9
    assert (low, high) == pytest.approx((29 / 11, 31 / 9))
    assert _block_interval(rows.assign(block_ms=None))[0] == pytest.approx(1 / (10 + 49.5))
