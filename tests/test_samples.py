"""Raw samples: every timed block's time is kept beside the CSV, keyed by its row, and survives resume and merge."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.execution.protocol import ProtocolError, decode_message
from bench.results import load, load_samples
from bench.results.samples import samples_path
from bench.results.selection import row_key
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
    assert decode_message(json.dumps({"status": "ok", "reason": "", "block_ms": [1.0, 2], "token": "t"}), "t")["block_ms"] == [1.0, 2]
