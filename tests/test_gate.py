"""The regression gate: decision logic on golden CSVs, the CLI's exit statuses, and a real measured run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import run_bench
from bench import results
from bench.analysis import gate, gate_pairs
from bench.cli.gate import pick_baseline
from synthetic_results import median_ms, row

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"
BASELINE = sorted((ROOT / "results" / "baseline").glob("ci-*.csv"))[0]  # any one machine's committed baseline


def _verdicts(frame: pd.DataFrame) -> dict[tuple[str, int], str]:
    return {(row["variant"], int(row["height"])): row["verdict"] for _, row in frame.iterrows()}


@pytest.mark.parametrize("mode", ["normalised", "absolute"])
def test_golden_verdicts(mode):
    expected = pd.read_csv(GOLDEN / "expected.csv")
    settings = gate.GateSettings(tolerance=0.25, reference=None if mode == "absolute" else "im2col")
    verdicts = gate.compare(results.load(GOLDEN / "baseline.csv"), results.load(GOLDEN / "current.csv"), settings)
    assert _verdicts(verdicts) == {(r.variant, r.height): getattr(r, mode) for r in expected.itertuples()}
    assert set(verdicts["verdict"]) == set(gate.VERDICTS)  # the golden files cover every verdict


def _pair(base_ms: float, cur_ms: float, base_iqr: float = 0.0, cur_iqr: float = 0.0, ref_iqr: float = 0.0):
    """Return (baseline, current) frames: reference im2col at 4 ms both sides, slide as given."""
    frame = results.load(GOLDEN / "baseline.csv").head(2).copy()  # im2col, slide at 14x14
    base, cur = frame.copy(), frame.copy()
    base["median_ms"], cur["median_ms"] = [4.0, base_ms], [4.0, cur_ms]
    base["iqr_ms"], cur["iqr_ms"] = [4.0 * ref_iqr, base_ms * base_iqr], [4.0 * ref_iqr, cur_ms * cur_iqr]
    return base, cur


@pytest.mark.parametrize("cur_ms, verdict", [
    (2.5, "unchanged"),        # +25 %: exactly the tolerance is not above it
    (2.5001, "regression"),    # just above
    (1.6, "unchanged"),        # 2.0/1.6 = +25 % faster: the edge again
    (1.5999, "improvement"),   # just faster than the edge
])
def test_tolerance_edges(cur_ms, verdict):
    base, cur = _pair(2.0, cur_ms)
    row = gate.compare(base, cur, gate.GateSettings(tolerance=0.25)).set_index("variant").loc["slide"]
    assert row["verdict"] == verdict


@pytest.mark.parametrize("cur_iqr, ref_iqr, verdict", [
    (0.0, 0.0, "regression"),   # +40 %, no spread: above the 25 % tolerance
    (0.4, 0.0, "regression"),   # spread: half of 40 % = 20 % < 40 %
    (0.8, 0.0, "unchanged"),    # half of 80 % = 40 %: the change is not outside the spread
    (0.4, 0.2, "unchanged"),    # the reference's spread counts twice (both runs): 20 + 10 + 10 = 40 %
])
def test_spread_rule(cur_iqr, ref_iqr, verdict):
    base, cur = _pair(2.0, 2.8, cur_iqr=cur_iqr, ref_iqr=ref_iqr)
    row = gate.compare(base, cur, gate.GateSettings(tolerance=0.25)).set_index("variant").loc["slide"]
    assert row["verdict"] == verdict


def test_reference_slowdown_only_visible_in_absolute_mode():
    base = results.load(GOLDEN / "baseline.csv").head(2)
    cur = base.assign(median_ms=base["median_ms"] * [2.0, 1.0])  # im2col twice as slow, slide the same
    normalised = gate.compare(base, cur).set_index("variant")
    assert normalised.loc["im2col", "verdict"] == "unchanged"
    assert "+100%" in normalised.loc["im2col", "note"]
    assert normalised.loc["slide", "verdict"] == "improvement"  # relative to a slower reference
    absolute = gate.compare(base, cur, gate.GateSettings(reference=None)).set_index("variant")
    assert list(absolute["verdict"]) == ["regression", "unchanged"]


def test_best_of_appended_runs():
    base = results.load(GOLDEN / "baseline.csv").head(2)
    disturbed = base.assign(median_ms=base["median_ms"] * [1.0, 3.0], run_id="disturbed")
    # the baseline file holds a disturbed run after a clean one: the fastest row per case counts
    verdicts = gate.compare(pd.concat([base, disturbed]), base)
    assert set(verdicts["verdict"]) == {"unchanged"}
    assert len(verdicts) == 2


def test_bad_tolerance_and_no_overlap():
    base = results.load(GOLDEN / "baseline.csv")
    with pytest.raises(gate.GateError, match="tolerance"):
        gate.compare(base, base, gate.GateSettings(tolerance=-0.1))
    with pytest.raises(gate.GateError, match="no case in common"):
        gate.compare(base, base.assign(batch=2))


def _gate(capsys, *argv: str) -> tuple[int, str, str]:
    status = run_bench.main(["gate", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_golden_writes_markdown(capsys, tmp_path):
    report = tmp_path / "gate.md"
    status, out, _ = _gate(capsys, "--baseline", str(GOLDEN / "baseline.csv"), "--current", str(GOLDEN / "current.csv"),
                           "--tolerance", "0.25", "--markdown", str(report))
    assert status == 1
    assert "gate: FAIL" in out
    text = report.read_text()
    assert "| cpu float32 forward b1 14x14 h2 d16 k7 | slide |" in text and "| regression |" in text
    assert text.count("\n| cpu") == 10


def test_baseline_against_itself_passes(capsys):
    status, out, _ = _gate(capsys, "--baseline", str(BASELINE), "--current", str(BASELINE))
    verdicts = gate.compare(results.load(BASELINE), results.load(BASELINE))
    assert status == 0 and "gate: pass" in out
    measured = verdicts["verdict"] != "not-comparable"  # cases skipped on this machine (e.g. eager flex above 16x16)
    assert set(verdicts.loc[measured, "verdict"]) == {"unchanged"} and measured.sum() > len(verdicts) / 2


def _write(frame: pd.DataFrame, path: Path) -> Path:
    results.append_rows(path, frame.astype(object).where(frame.notna(), None).to_dict("records"))
    return path


def test_regression_against_another_machines_baseline_is_advisory(capsys, tmp_path):
    """Relative speeds move between processors (AVX-512, denormals): only a same-machine baseline fails."""
    elsewhere = _write(results.load(GOLDEN / "current.csv").assign(device_name="Other CPU (2 cores)"), tmp_path / "cur.csv")
    report = tmp_path / "gate.md"
    status, out, _ = _gate(capsys, "--baseline", str(GOLDEN / "baseline.csv"), "--current", str(elsewhere),
                           "--tolerance", "0.25", "--markdown", str(report))
    assert status == 0
    assert "gate: pass, advisory" in out and "baseline measured on golden cpu, current on Other CPU (2 cores)" in out
    assert report.read_text().startswith("### Regression gate: pass, advisory") and "| regression |" in report.read_text()


def test_a_baseline_directory_gives_this_machines_file(capsys, tmp_path):
    golden = results.load(GOLDEN / "baseline.csv")
    for name in ("Other CPU", "golden cpu", "Third CPU"):
        frame = golden.assign(device_name=name)
        _write(frame, tmp_path / "baselines" / gate.baseline_file_name(frame))
    assert sorted(p.name for p in (tmp_path / "baselines").iterdir()) == ["ci-golden-cpu.csv", "ci-other-cpu.csv", "ci-third-cpu.csv"]
    current = results.load(GOLDEN / "current.csv")
    assert pick_baseline(tmp_path / "baselines", current).name == "ci-golden-cpu.csv"
    status, out, _ = _gate(capsys, "--baseline", str(tmp_path / "baselines"), "--current", str(GOLDEN / "current.csv"),
                           "--tolerance", "0.25")
    assert status == 1 and "gate: FAIL" in out  # the same machine's baseline: regressions count
    (tmp_path / "baselines" / "ci-golden-cpu.csv").unlink()
    status, out, _ = _gate(capsys, "--baseline", str(tmp_path / "baselines"), "--current", str(GOLDEN / "current.csv"),
                           "--tolerance", "0.25")
    assert status == 0 and "advisory" in out  # none from this machine: compared, reported, not failed


def _variants():
    """Every variant with a measured row in the baseline (one skipped here, e.g. triton-local without CUDA, has no time)."""
    frame = results.load(BASELINE)
    return sorted(set(frame.loc[frame["status"] == "ok", "variant"]) - {"im2col"})


@pytest.mark.parametrize("variant", _variants())
def test_one_variant_fifty_percent_slower_is_flagged(capsys, tmp_path, variant):
    frame = results.load(BASELINE)
    slower = frame.assign(median_ms=frame["median_ms"].where(frame["variant"] != variant, frame["median_ms"] * 1.5))
    _write(slower, tmp_path / "cur.csv")
    status, _, _ = _gate(capsys, "--baseline", str(BASELINE), "--current", str(tmp_path / "cur.csv"))
    verdicts = gate.compare(frame, results.load(tmp_path / "cur.csv"))
    flagged = verdicts[~verdicts["verdict"].isin(["unchanged", "not-comparable"])]
    assert status == 1
    assert set(flagged["variant"]) == {variant} and set(flagged["verdict"]) == {"regression"}


@pytest.mark.parametrize("argv, message", [
    (["--baseline", "nope.csv", "--current", "nope.csv"], "no results file"),
    (["--baseline", str(GOLDEN / "expected.csv"), "--current", str(BASELINE)], "missing column"),
    (["--baseline", str(GOLDEN / "baseline.csv"), "--current", str(BASELINE)], "no case in common"),
    (["--baseline", str(BASELINE), "--current", str(BASELINE), "--reference", "nosuch"], "reference variant"),
    (["--baseline", str(BASELINE), "--current", str(BASELINE), "--tolerance", "-1"], "bad tolerance"),
    (["--baseline", str(GOLDEN.parent / "plugins"), "--current", str(BASELINE)], "no baseline CSV in"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    status, _, err = _gate(capsys, *argv)
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1


# One child process (the plugin's variant must not leak into this session's registry) runs
# the sweeps, in itself (no worker to start per sweep); BENCH_SLOWED_FACTOR is read when each
# case is built, so it can change between runs.
SWEEPS = """
import os, sys, run_bench
base, cur = sys.argv[1:]
flags = ["--plugin", "tests.plugins.slowed", "--variants", "im2col,slowed", "--resolutions", "14",
         "--threads", "1", "--min-run-s", "0.05", "--max-run-s", "0.3", "--cases-per-worker", "0", "--no-plots"]
for run in range(2):  # two runs per side: the gate keeps the fastest, as scripts/ci_gate.sh does
    for factor, out in (("1.0", base), ("3.0", cur)):
        os.environ["BENCH_SLOWED_FACTOR"] = factor
        assert run_bench.main([*flags, "--out", out]) == 0
"""


@pytest.mark.slow
def test_measured_slowdown_is_flagged(tmp_path, capsys):
    # Real timings, relaxed for speed; a 3x delay so that no load on a shared machine hides it.
    base, cur = str(tmp_path / "base.csv"), str(tmp_path / "cur.csv")
    subprocess.run([sys.executable, "-c", SWEEPS, base, cur], cwd=ROOT, check=True, capture_output=True)
    status, out, _ = _gate(capsys, "--baseline", base, "--current", cur)
    verdicts = gate.compare(results.load(base), results.load(cur)).set_index("variant")
    assert status == 1, out
    assert verdicts.loc["slowed", "verdict"] == "regression"
    assert verdicts.loc["im2col", "verdict"] == "unchanged"


# Merged files of several machines (a cluster run's shards share the run id and differ by host).


def _machine_rows(host: str, slide: float = 1.0, run_id: str = "20260101-000000-aaaaaa", **overrides) -> list[dict]:
    """Return one machine's rows of im2col, slide, window at 14 and 28; slide's median times `slide`."""
    return [row(v, 1, res, host=host, run_id=run_id, median_ms=median_ms(v, 1, res, res) * (slide if v == "slide" else 1.0),
                **overrides) for v in ("im2col", "slide", "window") for res in (14, 28)]


def _merged(path: Path, *machines: list[dict]) -> Path:
    results.append_rows(path, [r for rows in machines for r in rows])
    return path


def test_a_regression_on_one_machine_of_a_merged_file_fails_and_names_that_machine(capsys, tmp_path):
    base = _merged(tmp_path / "base.csv", _machine_rows("node-a", run_id="base"), _machine_rows("node-b", run_id="base"))
    cur = _merged(tmp_path / "cur.csv", _machine_rows("node-a"), _machine_rows("node-b", slide=2.0))
    report = tmp_path / "gate.md"
    status, out, _ = _gate(capsys, "--baseline", str(base), "--current", str(cur), "--markdown", str(report))
    assert status == 1
    assert out.strip().splitlines()[-1] == "gate: FAIL (2 machines: 2 regression(s) on node-b)"
    text = report.read_text()
    assert text.startswith("### Regression gate: FAIL") and "| machine | case | variant |" in text
    regressions = [line for line in text.splitlines() if "| regression |" in line]
    assert len(regressions) == 2 and all(line.startswith("| node-b | ") and "| slide |" in line for line in regressions)
    assert text.count("| node-a | ") == 6 and text.count("| node-b | ") == 6  # every case once per machine
    assert "| 5.000 | 10.000 | +100.0% |" in text  # node-b's own slide 14x14: 5 ms -> 10 ms


def test_a_slowdown_without_a_same_kind_baseline_is_advisory(capsys, tmp_path):
    base = _merged(tmp_path / "base.csv", _machine_rows("node-a", run_id="base"))
    cur = _merged(tmp_path / "cur.csv", _machine_rows("node-a"), _machine_rows("node-c", slide=3.0))
    report = tmp_path / "gate.md"
    status, out, _ = _gate(capsys, "--baseline", str(base), "--current", str(cur), "--markdown", str(report))
    assert status == 0
    assert "note: node-c: no baseline from its hardware (Synthetic CPU of node-c)" in " ".join(out.split())
    assert out.strip().splitlines()[-1] == "gate: pass (2 machines: 0 regression(s); 2 advisory on node-c)"
    regressions = [line for line in report.read_text().splitlines() if "| regression |" in line]
    assert len(regressions) == 2 and all(line.startswith("| node-c (advisory) | ") for line in regressions)
    assert report.read_text().startswith("### Regression gate: pass")


def test_a_baseline_of_the_same_hardware_on_another_host_is_used(capsys, tmp_path):
    same_kind = dict(device_name="Synthetic CPU of node-b")
    # A directory: node-a's file, and a merged file where node-x has node-b's hardware (node-y does not).
    _merged(tmp_path / "base" / "a.csv", _machine_rows("node-a", run_id="base"))
    _merged(tmp_path / "base" / "b.csv", _machine_rows("node-y", run_id="base"), _machine_rows("node-x", run_id="base", **same_kind))
    current = results.load(_merged(tmp_path / "cur.csv", _machine_rows("node-a"), _machine_rows("node-b", slide=2.0)))
    pairs = gate_pairs.pair_machines(current, gate_pairs.candidates(
        [(str(p), results.load(p)) for p in sorted((tmp_path / "base").glob("*.csv"))]))
    assert [(p.host, p.baseline.host, p.advisory) for p in pairs] == [("node-a", "node-a", False), ("node-b", "node-x", False)]
    assert pairs[1].baseline.label == f"{tmp_path / 'base' / 'b.csv'}, host node-x"
    status, out, _ = _gate(capsys, "--baseline", str(tmp_path / "base"), "--current", str(tmp_path / "cur.csv"))
    assert status == 1 and "2 regression(s) on node-b" in out and "advisory" not in out


def test_same_host_and_hardware_beats_same_hardware_beats_same_host():
    current = pd.DataFrame(_machine_rows("node-a"))
    other_kind = gate_pairs.Candidate("f0", "node-a", pd.DataFrame(_machine_rows("node-a", device_name="Other CPU")))
    same_kind = gate_pairs.Candidate("f1", "node-z", pd.DataFrame(_machine_rows("node-z", device_name="Synthetic CPU of node-a")))
    exact = gate_pairs.Candidate("f2", "node-a", pd.DataFrame(_machine_rows("node-a")))
    assert gate_pairs.best_baseline("node-a", current, [other_kind, same_kind, exact]) is exact
    assert gate_pairs.best_baseline("node-a", current, [other_kind, same_kind]) is same_kind
    assert gate_pairs.best_baseline("node-a", current, [other_kind]) is other_kind  # compared, but advisory
    assert gate_pairs.Pair("node-a", current, other_kind).advisory and not gate_pairs.Pair("node-a", current, same_kind).advisory


def test_rows_of_two_hosts_never_collide():
    # One case from two hosts with other timings: each host is judged on its own rows.
    base = pd.DataFrame(_machine_rows("node-a", run_id="base") + _machine_rows("node-b", run_id="base", slide=4.0))
    cur = pd.DataFrame(_machine_rows("node-a") + _machine_rows("node-b", slide=4.0))
    with pytest.raises(gate.GateError, match=r"rows of 2 machines \(node-a, node-b\)"):
        gate.compare(base, cur)
    pairs = gate_pairs.pair_machines(cur, gate_pairs.candidates([("base.csv", base)]))
    verdicts, notes = gate_pairs.judge(pairs)
    assert notes == [] and len(verdicts) == 12 and set(verdicts["verdict"]) == {"unchanged"}
    slide = verdicts[(verdicts["variant"] == "slide") & (verdicts["height"] == 14)].set_index("machine")
    assert slide.loc["node-a", "current_ms"] == pytest.approx(5.0) and slide.loc["node-b", "current_ms"] == pytest.approx(20.0)
    assert slide.loc["node-b", "baseline_ms"] == pytest.approx(20.0)
    assert gate.exit_status(verdicts) == 0


def test_one_machine_of_a_merged_current_against_a_merged_baseline_keeps_the_one_machine_table(capsys, tmp_path):
    base = _merged(tmp_path / "base.csv", _machine_rows("node-a", run_id="base"), _machine_rows("node-b", run_id="base"))
    cur = _merged(tmp_path / "cur.csv", _machine_rows("node-b", slide=2.0))
    report = tmp_path / "gate.md"
    status, out, _ = _gate(capsys, "--baseline", str(base), "--current", str(cur), "--markdown", str(report))
    assert status == 1 and out.strip().splitlines()[-1] == "gate: FAIL (2 regression(s))"
    text = report.read_text()
    assert f"baseline: {base}, host node-b (Synthetic CPU of node-b)" in text
    assert "| case | variant |" in text and "| machine |" not in text
