"""The command line as a user meets it: exit codes, one-line errors, the CSV it writes."""

import re

import pytest
import torch

import run_bench
from bench import results

FAST = ["--min-run-s", "0.01", "--max-run-s", "0.05", "--no-plots"]


@pytest.mark.slow
def test_issue_command_writes_one_ok_row_per_variant(cli, tmp_path):
    out = tmp_path / "a.csv"
    variants = ["im2col", "slide", "slide-deformed", "window", "natten"]
    done = cli("--variants", ",".join(variants), "--resolutions", "28", "--batch", "1", "--devices", "cpu", "--out", str(out), *FAST)
    assert done.returncode == 0, done.stderr
    frame = results.load(out)
    assert list(frame["variant"]) == variants or sorted(frame["variant"]) == sorted(variants)
    assert (frame["status"] == "ok").all(), frame[["variant", "status", "reason"]]
    assert (frame["max_abs_err"] < 1e-4).all()
    assert (frame["median_ms"] > 0).all() and (frame["n_measurements"] >= 1).all()
    assert (frame["gflop"] > 0).all() and (frame["threads"] >= 1).all()
    assert "im2col" in done.stdout and "x vs im2col" in done.stdout


@pytest.mark.slow
def test_default_preset_runs_every_variant(cli, tmp_path):
    import attention_variants as av

    out = tmp_path / "q.csv"
    done = cli("--resolutions", "14", "--out", str(out), *FAST)  # the quick preset at its smallest size
    assert done.returncode == 0, done.stderr
    frame = results.load(out)
    assert sorted(frame["variant"]) == sorted(av.names()) and frame["run_id"].nunique() == 1
    # Every variant runs here, but a GPU-only one, which says so (triton-local on a machine without CUDA).
    cuda_only = frame["reason"].fillna("").str.contains("runs on CUDA") & (frame["status"] == "skipped")
    assert set(frame.loc[cuda_only, "variant"]) <= (set() if torch.cuda.is_available() else {"triton-local"})
    assert set(frame.loc[~cuda_only, "status"]) == {"ok"}, frame[["variant", "status", "reason"]]
    last = done.stderr.strip().splitlines()[-1]  # the sweep ends with its answer on the paper's claim
    assert re.fullmatch(r"Slide-Transformer's claim \(Slide faster than Im2Col\) on this machine: "
                        r"(HOLDS|DOES NOT HOLD|INCONCLUSIVE) \(.*\)", last), last
    assert "fastest exact variant of each family" in done.stderr


@pytest.mark.slow
def test_unsupported_cases_become_skipped_rows(cli, tmp_path):
    out = tmp_path / "s.csv"
    done = cli("--variants", "window,im2col", "--resolutions", "15", "--devices", "cpu,cuda", "--out", str(out), *FAST)
    assert done.returncode == 0, done.stderr
    frame = results.load(out).set_index(["variant", "device"])
    assert frame.loc[("window", "cpu"), "status"] == "skipped"
    assert "does not divide" in frame.loc[("window", "cpu"), "reason"]
    assert frame.loc[("im2col", "cpu"), "status"] == "ok"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        assert frame.loc[("im2col", "cuda"), "reason"] == "cuda is not available on this machine"


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--kernel-sizes", "4"], "even kernel size 4"),
        (["--variants", "nope"], "unknown variant 'nope'"),
        (["--devices", "tpu"], "unknown device 'tpu'"),
        (["--dtypes", "float8"], "unknown dtype 'float8'"),
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--resolutions", "0"], "non-positive resolutions value 0"),
        (["--resolutions", "5"], "kernel size 7 is larger than the image 5x5"),
        (["--batch", "1,,2"], "expected a comma-separated list"),
        (["--threads", "0"], "argument --threads: 0 is out of range"),
        (["--plugin", "no_such_module_xyz"], "plugin 'no_such_module_xyz' failed to import"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragment, capsys):
    try:
        status = run_bench.main(args)
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines


def test_bad_input_from_a_shell_has_no_traceback(cli):
    done = cli("--kernel-sizes", "4")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "run_bench.py: error: even kernel size 4: local attention needs an odd kernel (a centred square)"]


def test_list_shows_every_variant_with_family(capsys):
    import attention_variants as av

    assert run_bench.main(["list"]) == 0
    out = capsys.readouterr().out
    for variant in av.available():
        assert variant.name in out and variant.family in out
