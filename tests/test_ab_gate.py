"""The A/B gate: the interval and the verdicts (pure), the worktree's life, bad input, a real interleaved run."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import run_bench
from bench import results
from bench.analysis import ab
from bench.analysis.instructions import INSTRUCTION_TOLERANCE, judge_instructions
from bench.execution import revision
from bench.execution.ab import reserved_flag, side_order

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"


def test_the_median_interval_uses_order_statistics():
    assert ab.median_interval([5, 1, 4, 2, 3]) is None  # 5 rounds: min..max covers only 93.75 %
    assert ab.least_rounds() == 6
    assert ab.median_interval(list(range(1, 8))) == (1, 7)  # 7 rounds: 98.4 %
    assert ab.median_interval(list(range(1, 10))) == (2, 8)  # 9 rounds: x(2)..x(8) covers 96.1 %
    assert ab.median_interval(list(range(1, 10)), confidence=0.99) == (1, 9)


def _rows(ratios: dict[str, list[float]], drift: list[float] | None = None) -> pd.DataFrame:
    """Return A/B rows: per variant and round a base median of 10 ms (times the round's drift) and current = base * ratio."""
    template = results.load(GOLDEN / "baseline.csv").head(1)
    out = []
    for variant, per_round in ratios.items():
        for number, ratio in enumerate(per_round, start=1):
            scale = drift[number - 1] if drift else 1.0
            for side, ms in (("base", 10.0 * scale), ("current", 10.0 * scale * ratio)):
                if not math.isnan(ms):
                    out.append(template.assign(variant=variant, side=side, round=number, median_ms=ms))
    return pd.concat(out, ignore_index=True)


def test_paired_rounds_judge_through_drift():
    drift = [1.0, 2.0, 0.7, 1.5, 1.0, 3.0, 1.2]  # the machine's speed moves 4x between rounds
    rows = _rows({"slower": [1.19, 1.22, 1.18, 1.21, 1.2, 1.23, 1.17], "same": [1.0, 1.03, 0.97, 1.02, 0.99, 1.04, 0.98],
                  "faster": [0.8] * 7, "straddles": [1.02, 1.3, 1.1, 1.2, 1.25, 1.15, 1.12]}, drift)
    verdicts = ab.compare_ab(rows, ab.ABSettings(tolerance=0.05)).set_index("variant")
    assert dict(verdicts["verdict"]) == {"slower": "regression", "same": "unchanged", "faster": "improvement",
                                        "straddles": "unchanged"}
    assert verdicts.loc["slower", "change"] == pytest.approx(0.20) and verdicts.loc["slower", "low"] == pytest.approx(0.17)
    assert "reaches below it" in verdicts.loc["straddles", "note"]
    assert (verdicts["pairs"] == 7).all()


def test_one_sided_and_failed_cases_are_named():
    rows = _rows({"both": [1.0] * 7, "gone": [float("nan")] * 7})
    rows.loc[(rows["variant"] == "both") & (rows["round"] <= 3) & (rows["side"] == "current"), "status"] = "error"
    extra = _rows({"added": [1.0] * 7})
    rows = pd.concat([rows, extra[extra["side"] == "current"]], ignore_index=True)
    verdicts = ab.compare_ab(rows).set_index("variant")
    assert dict(verdicts["verdict"]) == {"both": "not-comparable", "gone": "missing", "added": "new"}
    assert "4 rounds ok on both sides" in verdicts.loc["both", "note"] and "error" in verdicts.loc["both", "note"]


def test_the_markdown_names_what_was_compared_and_what_the_numbers_mean():
    verdicts = ab.compare_ab(_rows({"slower": [1.2] * 7}))
    text = ab.markdown(verdicts, ab.ABSettings(), "base: HEAD~1 (abc: <b>x|y</b>); current: working tree", 7)
    assert text.startswith("### A/B regression gate: FAIL") and "&lt;b>x\\|y&lt;/b>" in text
    assert "not the ratio of the two ms columns" in text and "| slower |" in text


def _counts(base: float, current: float) -> pd.DataFrame:
    return pd.DataFrame([{"side": "base", "variant": "slower", "per_call": base, "problem": ""},
                         {"side": "current", "variant": "slower", "per_call": current, "problem": ""}])


def test_instruction_counts_fail_only_the_variants_own_change():
    verdicts = ab.compare_ab(_rows({"slower": [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0]}))
    more = _counts(1e6, 1e6 * (1 + 2 * INSTRUCTION_TOLERANCE))
    assert judge_instructions(verdicts, more, {"slower"})["verdict"].item() == "regression"
    reported = judge_instructions(verdicts, more, set())
    assert reported["verdict"].item() == "unchanged" and "its module is unchanged" in reported["note"].item()
    assert judge_instructions(verdicts, more, None)["verdict"].item() == "unchanged"
    same = judge_instructions(verdicts, _counts(1e6, 1e6 * (1 + INSTRUCTION_TOLERANCE / 2)), {"slower"})
    assert same["verdict"].item() == "unchanged" and same["instructions"].item() == pytest.approx(INSTRUCTION_TOLERANCE / 2)


def test_rounds_alternate_and_reserved_flags_are_refused():
    assert [side_order(n)[0] for n in (1, 2, 3)] == ["base", "current", "base"]
    assert reserved_flag(["--preset", "ci", "--out=x.csv"]) == "--out=x.csv" and reserved_flag(["--outer"]) is None


def ctrl_c_as_at_a_terminal() -> None:
    """Give the child SIGINT's default action: a background job of a shell without job control (a CI runner
    started with `cmd &`) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _worktrees() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout


def test_the_worktree_is_removed_also_after_an_error():
    head = revision.resolve(ROOT, "HEAD")
    with pytest.raises(RuntimeError, match="boom"):
        with revision.checked_out(ROOT, head) as tree:
            assert (tree / "run_bench.py").is_file() and str(tree) in _worktrees()
            raise RuntimeError("boom")
    assert not tree.exists() and str(tree) not in _worktrees()
    with pytest.raises(revision.RevisionError, match="is not a revision"):
        revision.resolve(ROOT, "no-such-revision-xyz")


@pytest.mark.parametrize("argv, message", [
    (["gate", "--base-rev", "no-such-revision-xyz"], "is not a revision"),
    (["gate", "--base-rev", "HEAD", "--rounds", "3"], "at least 6"),
    (["gate", "--base-rev", "HEAD", "--out", "x.csv"], "--out is set by the A/B gate"),
    (["gate", "--base-rev", "HEAD", "--current", "x.csv"], "leave out --baseline"),
    (["gate", "--preset", "ci"], "unrecognized arguments: --preset ci"),
    (["gate"], "give --baseline and --current"),
    (["list", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_ab_input_is_one_line(argv, message, capsys):
    with pytest.raises(SystemExit, match="2") if argv[0] == "list" else contextlib.nullcontext():
        assert run_bench.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


SMALL = ["--variants", "im2col,slide", "--resolutions", "8", "--threads", "1", "--min-run-s", "0.01", "--max-run-s", "0.03"]


@pytest.mark.slow
def test_an_ab_run_pairs_every_round_and_leaves_no_worktree(tmp_path, capsys):
    status = run_bench.main(["gate", "--base-rev", "HEAD", "--rounds", "6", "--ab-dir", str(tmp_path), "--no-instructions",
                             "--markdown", str(tmp_path / "out.md"), *SMALL])
    verdicts = pd.read_csv(tmp_path / "verdicts.csv")
    assert status == int((verdicts["verdict"] == "regression").any())
    assert sorted(verdicts["variant"]) == ["im2col", "slide"] and (verdicts["pairs"] == 6).all()
    for side in ("base", "current"):
        rows = results.load(tmp_path / f"{side}.csv")
        assert sorted(rows["round"].value_counts().items()) == [(r, 2) for r in range(1, 7)] and (rows["status"] == "ok").all()
    assert "base: HEAD (" in (tmp_path / "out.md").read_text() and "bench-base-" not in _worktrees()
    assert "instruction counts skipped" in capsys.readouterr().out


def test_a_side_whose_variants_do_not_import_is_one_line(tmp_path):
    from bench.execution.ab import ABError, variant_names

    (tmp_path / "attention_variants").mkdir()
    (tmp_path / "attention_variants" / "__init__.py").write_text("raise ImportError('planted: no variants here')\n")
    with pytest.raises(ABError, match="do not import: ImportError: planted: no variants here"):
        variant_names((str(tmp_path),))
    assert "im2col" in variant_names(())


def test_a_bad_sweep_flag_is_one_line(capsys):
    with pytest.raises(SystemExit, match="2"):
        run_bench.main(["gate", "--base-rev", "HEAD", "--bogus-flag"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --bogus-flag" in err and err.count("\n") == 1 and "bench-base-" not in _worktrees()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_worktree_is_removed_on_ctrl_c_and_sigterm(tmp_path, signum):
    process = subprocess.Popen([sys.executable, "run_bench.py", "gate", "--base-rev", "HEAD", "--ab-dir", str(tmp_path),
                                "--no-instructions", *SMALL], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=ctrl_c_as_at_a_terminal)
    deadline = time.monotonic() + 60
    while "bench-base-" not in _worktrees() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "bench-base-" in _worktrees()
    time.sleep(1.0)  # inside the first round's sweep
    os.kill(process.pid, signum)
    assert process.wait(timeout=60) != 0
    assert "bench-base-" not in _worktrees()


@pytest.mark.slow
def test_instruction_counts_repeat_and_see_more_work():
    from attention_variants.case import Case
    from bench.execution import instructions

    if instructions.unavailable():
        pytest.skip(instructions.unavailable())
    small, larger = (Case(variant="im2col", batch=1, height=size, width=size, heads=1, head_dim=8, kernel_size=3) for size in (8, 16))
    counts = instructions.count_all({"base": ROOT, "current": ROOT}, [small, larger])
    per_call = {(c.side, c.case.height): c.per_call for c in counts}
    assert all(c.problem == "" and c.per_call > 0 for c in counts), [c.problem for c in counts]
    # Two processes of the same code: measured within 0.5 % at this tiny size (0.07 % at 14x14), far under the tolerance.
    assert per_call[("current", 8)] == pytest.approx(per_call[("base", 8)], rel=INSTRUCTION_TOLERANCE / 3)
    assert per_call[("base", 16)] > per_call[("base", 8)] * (1 + INSTRUCTION_TOLERANCE)


def test_the_callgrind_control_stand_in_asks_about_its_caller_only(tmp_path):
    import subprocess

    from bench.execution import instructions

    shim = tmp_path / "callgrind_control"
    shim.write_text(instructions._CALLGRIND_CONTROL_SHIM.format(callgrind_control="echo"))
    shim.chmod(0o755)
    # torch's check runs `callgrind_control --stat` from the process it checks: the stand-in names that process
    assert subprocess.run([shim, "--stat"], capture_output=True, text=True).stdout.split() == ["--stat", str(os.getpid())]
    assert subprocess.run([shim, "--dump"], capture_output=True, text=True).stdout.split() == ["--dump"]


def test_the_library_that_starts_instrumentation_is_built_or_its_absence_said(tmp_path, monkeypatch):
    import ctypes

    from bench.execution import instructions

    if not Path("/usr/include/valgrind/callgrind.h").is_file():
        pytest.skip("valgrind's headers are not installed (Debian: apt-get install valgrind)")
    library = instructions._start_instrumentation_library(tmp_path)
    assert library is not None and library.is_file()
    ctypes.CDLL(str(library)).start_instrumentation()  # outside valgrind the client request does nothing
    monkeypatch.setenv("CC", "false")  # a compiler that fails: the counts then run instrumented from the start
    (tmp_path / "failed").mkdir()
    assert instructions._start_instrumentation_library(tmp_path / "failed") is None


def test_a_change_touches_the_variants_whose_code_runs_it():
    from bench.execution.touched import variants_touched

    slide = variants_touched(["attention_variants/slide.py", "README.md"])
    assert slide.own == {"slide", "slide-deformed"}  # defined in slide.py
    assert slide.affected == {"slide", "slide-deformed", "slide-grouped", "slide-channels-last"}  # slide_variants imports slide
    assert variants_touched(["attention_variants/local_tiled.c"]).affected == {"local-tiled"}
    layout = variants_touched(["attention_variants/layout.py"])
    assert layout.own == set() and {"im2col", "natten", "local-views"} <= layout.affected and "flex-neighborhood" not in layout.affected
    import attention_variants as av
    assert variants_touched(["attention_variants/__init__.py"]).affected == set(av.names())  # reached by no import: all
    assert variants_touched(["bench/cli/gate.py"]).affected == set()
    assert variants_touched(["attention_variants/reference.py"]).affected == set()  # the oracles run in no timed call


def test_package_imports_are_read_in_every_spelling(tmp_path):
    from bench.execution.touched import closure, package_imports

    (tmp_path / "a.py").write_text("from attention_variants.b import f\nfrom . import c\n")
    (tmp_path / "b.py").write_text("import attention_variants.d as d\n")
    (tmp_path / "c.py").write_text("from attention_variants import e\n")
    (tmp_path / "d.py").write_text("from .e import g\n")
    (tmp_path / "e.py").write_text("import torch\n")
    graph = package_imports(tmp_path)
    assert graph == {"a": {"b", "c"}, "b": {"d"}, "c": {"e"}, "d": {"e"}, "e": set()}
    assert closure("a", graph) == {"a", "b", "c", "d", "e"} and closure("e", graph) == {"e"}


def test_changed_only_passes_when_no_variant_changed(tmp_path, capsys):
    changed = revision.changed_files(ROOT, revision.resolve(ROOT, "HEAD")) or []
    if any(f.startswith("attention_variants/") for f in changed):
        pytest.skip("this working tree changes attention_variants/ itself")
    assert run_bench.main(["gate", "--base-rev", "HEAD", "--changed-only", "--ab-dir", str(tmp_path), *SMALL]) == 0
    assert "nothing to compare, pass" in " ".join(capsys.readouterr().out.split()) and not (tmp_path / "verdicts.csv").exists()


def test_the_smallest_case_per_variant_is_counted():
    from bench.execution.instructions import smallest_cases

    rows = _rows({"both": [1.0] * 6, "gone": [float("nan")] * 6})
    rows = pd.concat([rows, rows.assign(height=28, width=28)], ignore_index=True)
    assert [(c.variant, c.height) for c in smallest_cases(rows)] == [("both", int(rows["height"].min()))]


def test_a_base_the_harness_cannot_measure_is_bad_input():
    from bench.cli.ab_gate import _check_base_measured
    from bench.cli.common import CliError

    rows = _rows({"both": [1.0] * 6})
    _check_base_measured(rows)  # both sides ok: nothing to say
    rows.loc[rows["side"] == "base", ["status", "reason"]] = ["error", "AttributeError: no build"]
    with pytest.raises(CliError, match="no case of the base revision could be measured by this harness: AttributeError"):
        _check_base_measured(rows)
