"""The allocator as a recorded setting, faults per call, rounds, and noise shown, never hidden."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import run_bench
from attention_variants.case import Case
from bench import results
from bench.analysis.fidelity import fidelity_table
from bench.analysis.summary import noise_line
from bench.cli.console import summary_table
from bench.execution import allocator as allocators
from bench.execution.fidelity import CONDITIONS, run_fidelity
from bench.execution.isolation import Isolation
from bench.measure.probes import busy_report
from bench.measure.settings import Settings
from bench.results.selection import fastest_per_case, latest_per_case, median_over_rounds
from synthetic_results import row as make_row

REPO = Path(__file__).resolve().parent.parent


def test_each_allocator_sets_its_environment_and_pins_every_thread_pool():
    steady, cold = allocators.environment("steady", 3), allocators.environment("cold", 3)
    assert "mmap_max=0" in steady["GLIBC_TUNABLES"] and "mmap_threshold=131072" in cold["GLIBC_TUNABLES"]
    for env in (steady, cold):
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
        assert "LD_PRELOAD" not in env


def test_unknown_or_missing_allocator_says_why(monkeypatch):
    assert "known: steady, cold" in allocators.unavailable("nope")
    monkeypatch.setattr(allocators.ctypes.util, "find_library", lambda name: None)
    assert "apt-get install libjemalloc2" in allocators.unavailable("jemalloc")
    assert "--cases-per-worker" in allocators.apply_in_process("jemalloc")


def test_allocator_that_cannot_run_is_one_line_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(allocators.ctypes.util, "find_library", lambda name: None)
    assert run_bench.main(["--variants", "im2col", "--allocator", "tcmalloc", "--no-plots"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "run_bench.py: error: allocator 'tcmalloc' is not installed here (Debian: apt-get install libtcmalloc-minimal4)"]


@pytest.mark.slow
def test_cold_pays_page_faults_every_call_and_steady_does_not(tmp_path):
    """Fault counts, not times: deterministic whatever the machine's load."""
    faults = {}
    for allocator in ("steady", "cold"):
        out = tmp_path / f"{allocator}.csv"
        assert run_bench.main(["--variants", "im2col", "--resolutions", "28", "--batch", "1", "--threads", "1",
                               "--allocator", allocator, "--min-run-s", "0.05", "--max-run-s", "0.2",
                               "--no-plots", "--out", str(out)]) == 0
        row = results.load(out).iloc[0]
        assert row["status"] == "ok" and row["allocator"] == allocator and row["round"] == 1
        faults[allocator] = row["minor_faults_per_call"]
    # im2col's unfold at 28x28 makes two 9.8 MB copies: 2 x 2400 fresh 4 KiB pages per call when cold.
    # Steady is usually under 50; once in a full CI suite it measured 229 (cold: 9960), so the test
    # asks for the order of magnitude that separates them, not for zero.
    assert faults["cold"] > 2000 and faults["steady"] < faults["cold"] / 10, faults


def _rounds_frame() -> pd.DataFrame:
    rows = [make_row("im2col", median_ms=m, round=r, run_id="a") for r, m in enumerate((10.0, 12.0, 30.0), 1)]
    rows += [make_row("slide", median_ms=5.0, round=1, run_id="a"),
             make_row("slide", status="error", round=2, run_id="a")]
    return pd.DataFrame(rows).astype({"median_ms": float})


def test_rounds_become_one_row_with_their_median_and_spread():
    merged = median_over_rounds(_rounds_frame()).set_index("variant")
    assert merged.loc["im2col", "median_ms"] == 12.0 and merged.loc["im2col", "rounds"] == 3
    assert merged.loc["im2col", "round_spread"] == pytest.approx((30 - 10) / 12)
    assert merged.loc["slide", "status"] == "ok" and merged.loc["slide", "median_ms"] == 5.0  # an ok round wins
    assert pd.isna(merged.loc["slide", "round_spread"])  # one ok round: no spread to show
    assert len(latest_per_case(_rounds_frame())) == len(fastest_per_case(_rounds_frame())) == 2


def test_noise_is_counted_and_marked_never_hidden():
    rows = [make_row("im2col", median_ms=10.0, iqr_ms=3.0, n_measurements=8),
            make_row("slide", median_ms=10.0, iqr_ms=0.0, n_measurements=1),
            make_row("window", median_ms=1.0, iqr_ms=0.01, n_measurements=9)]
    frame = pd.DataFrame(rows)
    assert noise_line(frame).startswith("noise: 1 of 3 ok rows noisy (IQR above 10% of the median), 1 timed in one block")
    cells = {row[1]: row for row in _table_cells(summary_table(frame))}
    assert "~" in cells["im2col"][4] and "n=1" in cells["slide"][4] and cells["window"][4] == "1"


def _table_cells(table) -> list[list[str]]:
    columns = [list(column.cells) for column in table.columns]
    return [list(row) for row in zip(*columns)]


def test_busy_machine_is_named_before_a_sweep():
    # A busy loop that is not this process's descendant (the sweep ignores its own workers): its parent exits at once.
    spawn = ("import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', 'while True: pass'], "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)")
    pid = int(subprocess.run([sys.executable, "-c", spawn], capture_output=True, text=True, check=True).stdout)
    try:
        time.sleep(0.3)
        report = busy_report(sample_s=0.5)
    finally:
        os.kill(pid, signal.SIGKILL)
    assert report.startswith("the machine is not quiet") and f"pid {pid}" in report


def test_fidelity_ratios_and_verdicts():
    measured = {("im2col", "fresh"): 10.0, ("im2col", "after"): 10.5, ("im2col", "reversed"): 10.2, ("im2col", "plain"): 10.1,
                ("slide", "fresh"): 10.0, ("slide", "after"): 12.0, ("slide", "reversed"): 10.0, ("slide", "plain"): 8.0}
    # A second round twice as slow (the machine drifted): the ratios within each round are the same.
    rows = pd.DataFrame([{"variant": v, "batch": 1, "round": r, "condition": c, "status": "ok", "median_ms": ms * r}
                         for (v, c), ms in measured.items() for r in (1, 2)])
    table = fidelity_table(rows).set_index("variant")
    assert table.loc["im2col", "spread"] == pytest.approx(1.05) and table.loc["im2col", "within_histories"]
    assert table.loc["im2col", "within_plain"]
    assert table.loc["slide", "spread"] == pytest.approx(1.2) and not table.loc["slide", "within_histories"]
    assert table.loc["slide", "vs_plain"] == pytest.approx(1.5) and not table.loc["slide", "within_plain"]
    assert table.loc["slide", "after"] == pytest.approx(18.0)  # the ms shown are medians over rounds


def test_the_plain_timing_shares_no_code_with_the_harness():
    from test_architecture import import_graph

    assert {target for target in import_graph()["bench.execution.plain_timing"] if target.startswith("bench")} == set()


@pytest.mark.slow
def test_fidelity_measures_every_case_under_every_condition():
    cases = [Case(variant="im2col", batch=1, height=9, width=9, heads=1, head_dim=4, kernel_size=3),
             Case(variant="window", batch=1, height=9, width=9, heads=1, head_dim=4, kernel_size=3)]
    settings = Settings(threads=1, warmup_s=0.0, min_run_s=0.01, max_run_s=0.05, peaks={"cpu/float32": [1.0, 1.0]})
    rows = pd.DataFrame(run_fidelity(cases, settings, Isolation(cases_per_worker=100, threads=1)))
    assert sorted(rows["condition"].value_counts().to_dict().items()) == [(c, 2) for c in sorted(CONDITIONS)]
    assert (rows["status"] == "ok").all() and (rows["median_ms"] > 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("allocator", ["jemalloc", "tcmalloc"])
def test_a_preloaded_allocator_runs_and_is_recorded(tmp_path, allocator):
    if allocators.unavailable(allocator):
        pytest.skip(allocators.unavailable(allocator))
    out = tmp_path / "r.csv"
    assert run_bench.main(["--variants", "im2col", "--resolutions", "14", "--batch", "1", "--allocator", allocator,
                           "--min-run-s", "0.02", "--max-run-s", "0.1", "--no-plots", "--out", str(out)]) == 0
    row = results.load(out).iloc[0]
    assert (row["status"], row["allocator"]) == ("ok", allocator)


def test_a_preload_that_does_not_load_fails_the_worker_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(allocators, "library_path", lambda allocator: "/nonexistent/libjemalloc.so.2")
    monkeypatch.setattr(allocators, "unavailable", lambda name: None)
    out = tmp_path / "r.csv"
    assert run_bench.main(["--variants", "window", "--resolutions", "14", "--batch", "1", "--allocator", "jemalloc",
                           "--no-plots", "--out", str(out)]) == 0
    row = results.load(out).iloc[0]
    assert row["status"] == "error" and "LD_PRELOAD /nonexistent/libjemalloc.so.2 is not loaded" in row["reason"]
