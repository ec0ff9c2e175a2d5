"""Sweeps over several machines: shards, submitit jobs (local executor here; a real Slurm in test_slurm.py), merge."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import run_bench
from attention_variants.case import Case
from bench import results
from bench.execution import spec
from bench.execution.shards import ShardError, case_shapes, parse_shard, shard_cases, shard_path
from bench.results.merge import merge_files
from tests.conftest import run_main
from tests.synthetic_results import row, write_csv

TINY = ["--variants", "im2col,slide", "--resolutions", "14,28", "--batch", "1", "--kernel-sizes", "3",
        "--min-run-s", "0.01", "--max-run-s", "0.03", "--no-plots"]


def _cases(**axes: object) -> list[Case]:
    return spec.cases(spec.make_sweep("quick", {"variants": ["im2col", "slide", "natten"], **axes}))


@pytest.fixture
def machine_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_MACHINE_LOCK", str(tmp_path / "machine.lock"))


# -- shards --

@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_split_the_cases_exactly_and_keep_a_shape_together(count):
    cases = _cases(resolutions=[14, 28, 56], batch=[1, 2])
    shards = [shard_cases(cases, index, count) for index in range(1, count + 1)]
    assert sorted(map(repr, sum(shards, []))) == sorted(map(repr, cases))  # each case in exactly one shard
    for shard in shards:
        shapes = case_shapes(shard)
        assert len(shard) == 3 * len(shapes)  # every variant of a shape goes where its shape goes
    sizes = [len(case_shapes(shard)) for shard in shards]
    assert max(sizes) - min(sizes) <= 1


def test_a_shard_is_the_same_in_every_run():
    first = [shard_cases(_cases(resolutions=[14, 28, 56]), index, 2) for index in (1, 2)]
    again = [shard_cases(_cases(resolutions=[14, 28, 56]), index, 2) for index in (1, 2)]
    assert first == again and first[0] != first[1]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_bad_shard_is_refused(text):
    with pytest.raises(ShardError, match="expected I/N"):
        parse_shard(text)


@pytest.mark.slow
def test_shard_flag_runs_only_that_shards_cases(cli, tmp_path):
    out = tmp_path / "s2.csv"
    done = cli(*TINY, "--shard", "2/2", "--out", str(out), "--cases-per-worker", "0")
    assert done.returncode == 0, done.stderr
    frame = results.load(out)
    assert set(frame["height"]) == {14} and sorted(frame["variant"]) == ["im2col", "slide"]  # 28 is the larger: shard 1


# -- merge --

def test_merge_keeps_every_machine_and_drops_a_file_given_twice(tmp_path, capsys):
    a = write_csv(tmp_path / "runs" / "a.csv", [row("im2col", host="node-a"), row("slide", host="node-a")])
    b = write_csv(tmp_path / "runs" / "b.csv", [row("im2col", host="node-b"), row("slide", host="node-b")])
    copy = tmp_path / "copy-of-a.csv"
    copy.write_text(a.read_text())
    assert run_bench.main(["merge", str(tmp_path / "runs"), str(copy), "--out", str(tmp_path / "all.csv")]) == 0
    merged = results.load(tmp_path / "all.csv")
    assert sorted(zip(merged["host"], merged["variant"])) == [("node-a", "im2col"), ("node-a", "slide"),
                                                              ("node-b", "im2col"), ("node-b", "slide")]
    assert "2 duplicate row(s) dropped" in "".join(capsys.readouterr())
    pd.testing.assert_series_equal(merged[merged["host"] == "node-b"]["median_ms"].reset_index(drop=True),
                                   results.load(b)["median_ms"])


def test_merge_keeps_rounds_and_the_newer_of_a_repeated_row(tmp_path):
    rows = [row("im2col", host="n", round=1, median_ms=1.0), row("im2col", host="n", round=2, median_ms=2.0)]
    old = write_csv(tmp_path / "old.csv", rows)
    new = write_csv(tmp_path / "new.csv", [row("im2col", host="n", round=2, median_ms=3.0,
                                               timestamp="2026-01-02T00:00:00+0000")])
    merged = merge_files([new, old]).frame.sort_values("round")
    assert list(merged["median_ms"]) == [1.0, 3.0]


def test_merge_migrates_an_older_schema(tmp_path):
    current = write_csv(tmp_path / "current.csv", [row("im2col", host="new", scope="op")])
    frame = results.load(current)
    old_columns = [c for c in frame.columns if c not in ("scope", "params", "tolerance", "mean_abs_err", "mean_tolerance",
                                                         "schema_version", "round", "allocator")]
    older = tmp_path / "older.csv"
    frame.assign(host="old")[old_columns].to_csv(older, index=False)
    merged = merge_files([current, older]).frame
    assert list(merged.columns) == list(results.COLUMNS)
    assert merged.set_index("host").loc["old", "scope"] is pd.NA and merged.set_index("host").loc["new", "scope"] == "op"


def test_merge_refuses_unknown_columns_and_a_newer_schema(tmp_path):
    good = write_csv(tmp_path / "good.csv", [row("im2col")])
    extra = tmp_path / "extra.csv"
    results.load(good).assign(energy_j=1.0).to_csv(extra, index=False)
    status, lines = run_main(["merge", str(good), str(extra), "--out", str(tmp_path / "all.csv")])
    stderr = "\n".join(lines)
    assert status == 2 and "energy_j" in stderr and "newer version" in stderr
    newer = write_csv(tmp_path / "newer.csv", [row("im2col", schema_version=results.SCHEMA_VERSION + 1)])
    status, lines = run_main(["merge", str(good), str(newer), "--out", str(tmp_path / "all.csv")])
    stderr = "\n".join(lines)
    assert status == 2 and f"schema version {results.SCHEMA_VERSION + 1}" in stderr
    assert not (tmp_path / "all.csv").exists()


def test_merge_never_overwrites_a_file_it_does_not_read(tmp_path):
    good = write_csv(tmp_path / "good.csv", [row("im2col", host="a")])
    other = write_csv(tmp_path / "other.csv", [row("slide", host="b")])
    before = other.read_text()
    status, lines = run_main(["merge", str(good), "--out", str(other)])
    stderr = "\n".join(lines)
    assert status == 2 and "is not an input" in stderr and other.read_text() == before
    status, _ = run_main(["merge", str(good), str(other), "--out", str(other)])  # merging into it keeps its rows
    assert status == 0 and sorted(results.load(other)["host"]) == ["a", "b"]


def test_merge_of_a_directory_without_csv_is_one_line(tmp_path):
    status, lines = run_main(["merge", str(tmp_path), "--out", str(tmp_path / "x.csv")])
    stderr = "\n".join(lines)
    assert status == 2 and len(lines) == 1 and "no .csv file" in stderr


# -- submitit's local executor --

@pytest.mark.slow
@pytest.mark.cluster
def test_two_shards_through_submitit_local_make_one_merged_csv(cli, tmp_path, machine_lock):
    out = tmp_path / "all.csv"
    done = cli(*TINY, "--executor", "submitit-local", "--shards", "2", "--out", str(out), "--run-id", "cluster-run-1")
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "cluster-run-1"
    shard_csvs = sorted(folder.glob("shard-*.csv"))
    assert [path.name.split("-")[1] for path in shard_csvs] == ["1", "2"]
    merged = results.load(out)
    assert len(merged) == 4 and set(merged["status"]) == {"ok"} and set(merged["run_id"]) == {"cluster-run-1"}
    assert sorted(map(len, (results.load(path) for path in shard_csvs))) == [2, 2]
    for path in shard_csvs:  # one case shape per shard, both variants of it
        assert sorted(results.load(path)["variant"]) == ["im2col", "slide"]
    assert re.search(r"merged 4 rows from 2 file\(s\), 1 machine", done.stdout + done.stderr)


@pytest.mark.slow
@pytest.mark.cluster
def test_a_failed_job_is_resubmitted_and_its_shard_finishes(cli, tmp_path, machine_lock, monkeypatch):
    monkeypatch.setenv("FLAKY_JOB_MARKER", str(tmp_path / "failures"))
    monkeypatch.setenv("FLAKY_JOB_FAILURES", "1")
    done = cli(*TINY, "--plugin", "tests.plugins.flaky_job", "--executor", "submitit-local", "--shards", "2",
               "--max-retries", "1", "--cases-per-worker", "0", "--out", str(tmp_path / "all.csv"))
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert (tmp_path / "failures").read_text().count("\n") == 1
    assert re.search(r"shard \d: job \S+ failed \(.*RuntimeError: planted failure of this job.*\); resubmitting", text)
    assert len(results.load(tmp_path / "all.csv")) == 4


@pytest.mark.slow
@pytest.mark.cluster
def test_a_shard_that_keeps_failing_is_named_and_the_run_can_be_finished(cli, tmp_path, machine_lock, monkeypatch):
    monkeypatch.setenv("FLAKY_JOB_MARKER", str(tmp_path / "failures"))
    monkeypatch.setenv("FLAKY_JOB_FAILURES", "1")
    flags = [*TINY, "--plugin", "tests.plugins.flaky_job", "--executor", "submitit-local", "--shards", "2",
             "--max-retries", "0", "--cases-per-worker", "0", "--out", str(tmp_path / "all.csv")]
    done = cli(*flags, "--run-id", "flaky-run")
    text = done.stdout + done.stderr
    assert done.returncode == 75, text
    assert "1 shard(s) failed" in text and "planted failure" in text
    assert "--run-id flaky-run" in text.split("finish the run with:")[1]
    assert len(results.load(tmp_path / "all.csv")) == 2  # the shard that ran is merged already
    finished = cli(*flags, "--run-id", "flaky-run")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert len(list((tmp_path / "flaky-run" / "submitit").glob("*_submitted.pkl"))) == 3  # 2 jobs, then only the failed shard's
    assert len(results.load(tmp_path / "all.csv")) == 4


@pytest.mark.parametrize("flags, fragment", [
    (["--shards", "0"], "argument --shards: 0 is out of range: expected 1 to"),
    (["--shards", "3"], "bad --shards 3: expected 1 to 2"),
    (["--slurm-time", "soon"], "bad --slurm-time 'soon'"),
    (["--max-retries", "-1"], "argument --max-retries: -1 is out of range: expected 0 to"),
    (["--shard", "1/2"], "--resume and --shard are for one machine"),
    (["--run-id", "../escape"], "bad --run-id '../escape'"),
])
def test_bad_cluster_flags_are_one_line(tmp_path, flags, fragment):
    status, lines = run_main([*TINY, "--executor", "submitit-local", "--out", str(tmp_path / "all.csv"), *flags])
    stderr = "\n".join(lines)
    assert status == 2 and fragment in stderr and len(lines) == 1, stderr
    assert not list(tmp_path.iterdir())


def test_submitit_executor_without_slurm_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(Path(__file__).parent))  # no sbatch there
    status, err = run_main([*TINY, "--executor", "submitit", "--out", str(tmp_path / "all.csv")])
    assert status == 2 and "needs Slurm's sbatch" in err[-1] and "submitit-local" in err[-1], err


def test_shard_path_names_shard_and_host(tmp_path):
    assert shard_path(tmp_path, 3, "node-7") == tmp_path / "shard-3-node-7.csv"
