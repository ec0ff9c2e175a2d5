"""Reliability: isolated cases, recorded failures, kill-and-resume without loss, one-line bad-input errors.

The fault variants (tests/plugins/faults.py) crash, hang and exhaust memory on purpose, so
they are only ever imported by the sweeps these tests start as subprocesses, never here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from attention_variants.case import Case
from bench import results
from bench.axes import case_columns
from bench.execution.sweep import case_key_text, pending, plan_rounds
from bench.measure.failures import classify
from bench.results import store
from tests.conftest import run_main

REPO = Path(__file__).resolve().parent.parent
TINY = ["--resolutions", "14", "--min-run-s", "0.01", "--max-run-s", "0.05", "--threads", "1"]
FAULTS = ["--plugin", "tests.plugins.faults"]


def ctrl_c_as_at_a_terminal() -> None:
    """Give the child SIGINT's default action (a CI runner started as a background job may have it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sweep(*args: str, env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen:
    """Start `run_bench.py sweep ARGS` as a subprocess of its own."""
    return subprocess.Popen([sys.executable, "run_bench.py", "sweep", *args], cwd=REPO, env={**os.environ, "COLUMNS": "250", **(env or {})},
                            preexec_fn=ctrl_c_as_at_a_terminal,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_until_hanging(process: subprocess.Popen, pid_file: Path) -> None:
    """Wait (at most 120 s) until fault-hangs has written its pids, i.e. the sweep is inside that case."""
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()[1]
        time.sleep(0.2)


def gone(pid: int, within_s: float = 10.0) -> bool:
    """Return whether process pid has ended (or is a zombie) within the time given."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_fault_sweep_records_every_failure_and_finishes(tmp_path: Path) -> None:
    out, pid_file = tmp_path / "faults.csv", tmp_path / "hang.pid"
    variants = "im2col,window,fault-raises,fault-aborts,fault-hangs,fault-allocates,fault-allocates-in-child"
    process = sweep(*FAULTS, "--variants", variants, *TINY, "--case-timeout", "5", "--max-memory-gb", "1",
                    "--out", str(out), env={"FAULTS_PID_FILE": str(pid_file)})
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr
    frame = results.load(out)
    assert sorted(frame["variant"]) == sorted(variants.split(","))  # one row per case
    by_variant = frame.set_index("variant")
    statuses = by_variant["status"].to_dict()
    assert statuses == {
        "im2col": "ok", "window": "ok", "fault-raises": "error", "fault-aborts": "error",
        "fault-hangs": "timeout", "fault-allocates": "oom", "fault-allocates-in-child": "oom",
    }
    reasons = by_variant["reason"].to_dict()
    assert reasons["fault-raises"] == "RuntimeError: injected failure for the reliability tests"
    assert "SIGABRT" in reasons["fault-aborts"]
    assert "--case-timeout" in reasons["fault-hangs"]
    assert "allocate" in reasons["fault-allocates"]  # failed inside the worker, under its address-space cap
    assert "--max-memory-gb" in reasons["fault-allocates-in-child"]  # killed by the parent's watch
    assert "7 cases: 2 ok, 5 failed (2 error, 2 oom, 1 timeout)" in stderr
    worker_pid, child_pid = map(int, pid_file.read_text().split())
    assert gone(worker_pid) and gone(child_pid)  # a timeout kills the worker's children too


@pytest.mark.slow
def test_sigkill_then_resume_holds_every_case_once(tmp_path: Path) -> None:
    out, pid_file = tmp_path / "run.csv", tmp_path / "hang.pid"
    variants = "im2col,window,fault-hangs,window-shifted,slide"
    options = [*FAULTS, "--variants", variants, *TINY]
    first = sweep(*options, "--out", str(out), "--case-timeout", "120", env={"FAULTS_PID_FILE": str(pid_file)})
    wait_until_hanging(first, pid_file)  # the third case hangs: kill mid-case
    first.send_signal(signal.SIGKILL)
    first.communicate()
    worker_pid, child_pid = map(int, pid_file.read_text().split())
    assert gone(worker_pid) and gone(child_pid)  # the worker noticed its sweep died
    assert len(results.load(out)) == 2
    with out.open("a") as handle:  # and a writer killed mid-line left a torn row behind
        handle.write("20261125-000000-abcdef,2026-11-25T00:00:00,window,window,cpu")
    second = sweep(*options, "--resume", str(out), "--case-timeout", "3")
    stdout, stderr = second.communicate(timeout=240)
    assert second.returncode == 0, stderr
    assert "2 of 5 cases already recorded, 3 to run" in stderr
    assert all(variant in stdout for variant in variants.split(","))  # the table shows the whole run
    frame = results.load(out)
    assert out.read_text().splitlines()[0].split(",") == list(results.COLUMNS)
    keys = list(frame[list(results.CASE_KEY)].astype(str).itertuples(index=False, name=None))
    assert len(keys) == len(set(keys)) == 5  # every case exactly once
    assert frame["run_id"].nunique() == 1  # a resumed run keeps its id
    assert frame.set_index("variant")["status"].to_dict() == {
        "im2col": "ok", "window": "ok", "fault-hangs": "timeout", "window-shifted": "ok", "slide": "ok"}


@pytest.mark.slow
def test_ctrl_c_kills_the_worker_and_keeps_finished_rows(tmp_path: Path) -> None:
    out, pid_file = tmp_path / "run.csv", tmp_path / "hang.pid"
    first = sweep(*FAULTS, "--variants", "im2col,fault-hangs,window", *TINY, "--out", str(out),
                  env={"FAULTS_PID_FILE": str(pid_file)})
    wait_until_hanging(first, pid_file)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert list(results.load(out)["variant"]) == ["im2col"]
    assert all(gone(int(pid)) for pid in pid_file.read_text().split())


@pytest.mark.slow
def test_lines_a_case_writes_on_the_result_pipe_are_refused_and_blamed_on_it(tmp_path: Path) -> None:
    out = tmp_path / "run.csv"
    done = sweep(*FAULTS, "--variants", "fault-writes-junk,window,fault-forges-a-row,im2col", *TINY, "--out", str(out))
    _, stderr = done.communicate(timeout=300)
    assert done.returncode == 0 and "Traceback" not in stderr, stderr
    frame = results.load(out)
    assert list(frame["variant"]) == ["fault-writes-junk", "window", "fault-forges-a-row", "im2col"]  # no row replaced
    assert set(frame["run_id"]) == {frame["run_id"].iloc[0]} != {"forged"}
    by_variant = frame.set_index("variant")
    assert by_variant.loc["fault-writes-junk", "status"] == "error" and "malformed" in by_variant.loc["fault-writes-junk", "reason"]
    assert by_variant.loc["fault-forges-a-row", "status"] == "error" and "does not answer" in by_variant.loc["fault-forges-a-row", "reason"]
    assert by_variant.loc["window", "status"] == by_variant.loc["im2col", "status"] == "ok"  # the innocent cases after
    assert by_variant.loc["im2col", "median_ms"] > 0.001


@pytest.mark.slow
def test_a_case_leaves_nothing_behind_for_the_next(tmp_path: Path) -> None:
    out, pid_file = tmp_path / "run.csv", tmp_path / "daemon.pid"
    done = sweep(*FAULTS, "--variants", "fault-litters,fault-inspects,fault-leaks-fds,fault-counts-fds", *TINY, "--out", str(out),
                 env={"FAULTS_PID_FILE": str(pid_file)})
    _, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr
    statuses = results.load(out).set_index("variant")["status"].to_dict()
    assert statuses == {"fault-litters": "ok", "fault-inspects": "ok", "fault-leaks-fds": "ok", "fault-counts-fds": "ok"}, \
        results.load(out)[["variant", "reason"]]
    assert gone(int(pid_file.read_text()))  # the double-forked daemon died with its case


@pytest.mark.slow
def test_the_results_file_belongs_to_the_sweep(tmp_path: Path) -> None:
    out = tmp_path / "run.csv"
    variants = "im2col,fault-truncates-results,window,fault-appends-junk,fault-locks-results,slide"
    done = sweep(*FAULTS, "--variants", variants, *TINY, "--out", str(out), env={"FAULTS_RESULTS_FILE": str(out)})
    _, stderr = done.communicate(timeout=300)
    assert done.returncode == 0 and "Traceback" not in stderr, stderr
    frame = results.load(out)  # loadable: the junk is gone
    assert sorted(frame["variant"]) == sorted(variants.split(","))  # every row measured is there, once
    assert "were gone and are written again" in stderr and "moved to run.csv.rejected" in stderr
    assert "junk, not a row\n" in (tmp_path / "run.csv.rejected").read_text()  # with the header the truncation cut


@pytest.mark.slow
def test_ctrl_c_before_the_first_row_says_nothing_was_written(tmp_path: Path) -> None:
    out, pid_file = tmp_path / "run.csv", tmp_path / "hang.pid"
    first = sweep(*FAULTS, "--variants", "fault-hangs,window", *TINY, "--out", str(out), env={"FAULTS_PID_FILE": str(pid_file)})
    wait_until_hanging(first, pid_file)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130 and "nothing was written" in stderr and "--resume" not in stderr, stderr
    assert not out.exists()


GOOD_HEADER = ",".join(results.COLUMNS)
BAD_CSVS = {
    "empty": "",
    "foreign": "name,score\nalice,3\n",
    "binary": "\x00\x01\x02garbage",
    "short row in the middle": f"{GOOD_HEADER}\n1,2,3\n{GOOD_HEADER.replace('run_id', 'x')}\n",
    "bad status": GOOD_HEADER + "\n" + ",".join("r t im2col local-zero-pad cpu c float32 1 14 14 2 32 7 forward false banana".split()
                                                 + [""] * (len(results.COLUMNS) - 16)) + "\n",
    "repeated column": GOOD_HEADER + ",status\n",
}
BAD_PRESETS = {
    "unknown key": 'devcies = ["cpu"]\n',
    "wrong type": 'batch = "two"\n',
    "infinite time": "max_run_s = inf\n",
    "empty axis": "dtypes = []\n",
    "invalid TOML": "batch = [1,\n",
}


@pytest.mark.parametrize("name", [name for name in BAD_CSVS if name != "empty"])  # empty: resumed from scratch (test_newcomer)
def test_corrupt_resume_csv_is_one_line_exit_2(tmp_path: Path, name: str) -> None:
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(BAD_CSVS[name])
    status, lines = run_main(["--variants", "im2col", *TINY, "--resume", str(csv_path)])
    assert status == 2 and len(lines) == 1 and str(csv_path) in lines[0], lines
    with pytest.raises(results.ResultsError):
        results.load(csv_path)  # what plot and gate read through


@pytest.mark.parametrize("name", BAD_PRESETS)
def test_bad_preset_is_one_line_exit_2(tmp_path: Path, name: str) -> None:
    preset = tmp_path / "bad.toml"
    preset.write_text(BAD_PRESETS[name])
    status, lines = run_main(["--preset", str(preset), "--out", str(tmp_path / "never.csv")])
    assert status == 2 and len(lines) == 1, lines
    assert not (tmp_path / "never.csv").exists()


@pytest.mark.parametrize("source", ["raise ImportError('no such backend\\nsecond line')", "import sys; sys.exit(3)",
                                    "this is not python"])
def test_plugin_that_fails_to_import_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    (tmp_path / "broken_plugin.py").write_text(source + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    status, lines = run_main(["--plugin", "broken_plugin", "--out", str(tmp_path / "never.csv")])
    assert status == 2 and len(lines) == 1 and "broken_plugin" in lines[0], lines


@pytest.mark.parametrize("flag,value", [("--case-timeout", "0"), ("--case-timeout", "nan"), ("--max-memory-gb", "-1"),
                                        ("--cases-per-worker", "-2")])
def test_bad_isolation_option_is_one_line_exit_2(tmp_path: Path, flag: str, value: str) -> None:
    status, lines = run_main([flag, value, "--out", str(tmp_path / "never.csv")])
    assert status == 2 and len(lines) == 1 and flag in lines[0], lines


def test_bad_input_from_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    csv_path = tmp_path / "foreign.csv"
    csv_path.write_text(BAD_CSVS["foreign"])
    process = sweep("--resume", str(csv_path))
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and stderr.strip().count("\n") == 0 and "Traceback" not in stderr, stderr


def row(variant: str, **changes: object) -> dict[str, object]:
    """Return a minimal results row of a 14x14 case."""
    case = Case(variant=variant, height=14, width=14)
    return {"run_id": "r", "timestamp": "t", **case_columns(case), "family": "f", "status": "ok", **changes}


def test_torn_last_line_is_ignored_by_load_and_cut_by_append(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    results.append_rows(path, [row("im2col"), row("window")])
    whole = path.read_text()
    path.write_text(whole + whole.splitlines()[1][:25])  # a writer killed mid-row
    frame = results.load(path)
    assert len(frame) == 2 and frame.attrs["partial_last_line"]
    results.append_rows(path, [row("slide")])
    assert path.read_text() == whole + store.rows_csv([row("slide")], header=False)
    assert not results.load(path).attrs["partial_last_line"]


def test_whole_last_row_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    results.append_rows(path, [row("im2col"), row("window", reason='a "quoted", multi\nline reason')])
    path.write_text(path.read_text().rstrip("\n"))
    frame = results.load(path)
    assert list(frame["variant"]) == ["im2col", "window"] and not frame.attrs["partial_last_line"]


def test_file_from_an_older_schema_loads_and_gains_new_columns_on_append(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    old_columns = [c for c in results.COLUMNS if c not in ("params", "dilation")]  # as written before schema 4
    path.write_text(",".join(old_columns) + "\n" + ",".join(str(row("im2col").get(c, "")) for c in old_columns) + "\n")
    loaded = results.load(path)
    assert loaded["params"].isna().all() and (loaded["dilation"] == 1).all()  # empty, or the schema's default
    results.append_rows(path, [row("window")])
    assert path.read_text().splitlines()[0] == GOOD_HEADER and len(results.load(path)) == 2


def test_allocation_failures_are_oom_and_reasons_one_line() -> None:
    assert classify(MemoryError())[0] == "oom"
    assert classify(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"))[0] == "oom"
    assert classify(RuntimeError("CUDA error: out of memory"))[0] == "oom"
    assert classify(ValueError("shape mismatch\ndetails")) == ("error", "ValueError: shape mismatch")


def test_pending_skips_recorded_cases_only() -> None:
    plan = plan_rounds([Case(variant="im2col"), Case(variant="window"), Case(variant="im2col", batch=2)], repeats=1, seed=0)
    assert pending(plan, [case_key_text(Case(variant="window"))]) == [(1, Case(variant="im2col")), (1, Case(variant="im2col", batch=2))]
    frame_keys = [("1", "im2col", "cpu", "float32", "1", "28", "28", "2", "32", "7", "1", "forward", "eager")]
    assert pending(plan, frame_keys) == [(1, Case(variant="window")), (1, Case(variant="im2col", batch=2))]


def test_rounds_shuffle_each_round_from_the_seed_and_resume_by_round() -> None:
    cases = [Case(variant="im2col", batch=b) for b in range(1, 9)]
    plan = plan_rounds(cases, repeats=3, seed=5)
    assert [r for r, _ in plan] == [1] * 8 + [2] * 8 + [3] * 8
    orders = [[c.batch for r, c in plan if r == n] for n in (1, 2, 3)]
    assert all(sorted(order) == list(range(1, 9)) for order in orders) and len({tuple(o) for o in orders}) == 3
    assert plan == plan_rounds(cases, repeats=3, seed=5) and plan != plan_rounds(cases, repeats=3, seed=6)
    done = [case_key_text(case, r) for r, case in plan[:10]]
    assert pending(plan, done) == plan[10:]  # round 1 done and two cases of round 2


@pytest.mark.slow
def test_primed_workers_start_together_and_a_crash_while_priming_costs_no_row() -> None:
    from dataclasses import asdict

    from bench.execution.isolation import Isolation
    from bench.execution.pool import WorkerPool
    from bench.measure.settings import Settings

    settings = asdict(Settings(threads=1, min_run_s=0.01, max_run_s=0.03))
    case = {name: asdict(Case(variant=name, height=9, width=9, heads=1, head_dim=8, kernel_size=3))
            for name in ("im2col", "window", "fault-aborts")}
    isolation = Isolation(plugins=("tests.plugins.faults",), threads=1, case_timeout_s=60)
    with WorkerPool(isolation) as healthy, WorkerPool(isolation) as crashing:
        healthy.launch([case["im2col"], case["window"]], settings)
        crashing.launch([case["im2col"], case["fault-aborts"], case["window"]], settings)
        assert healthy.ready() is None and crashing.ready() is None
        assert healthy.worker is not None and crashing.worker is None  # it died priming fault-aborts: retired
        assert healthy.measure(case["window"], settings).status == "ok"  # primes are not answers to measure
        assert crashing.measure(case["im2col"], settings).status == "ok"  # a fresh worker, started on demand
        aborted = crashing.measure(case["fault-aborts"], settings)
        assert aborted.status == "error" and "SIGABRT" in aborted.reason
