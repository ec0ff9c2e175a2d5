"""A newcomer's first hour: what the README's commands print, the files they leave, the messages they give."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

import attention_variants as av
import run_bench
from attention_variants.case import Case
from bench import results
from bench.cli.listing import runs_here
from conftest import REPO
from synthetic_results import grid_rows, write_csv


def test_top_level_help_shows_the_commands_and_the_sweeps_flags(capsys):
    assert run_bench.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "fidelity" in out and "models" in out  # the commands
    for flag in ("--variants", "--resolutions", "--repeats", "--allocator", "--resume"):
        assert flag in out, flag


def test_results_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_csv(tmp_path / "r.csv", grid_rows(["im2col"], [14], [1]))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.chmod(path, 0o640)  # a mode chosen by the user survives an append
        results.append_rows(path, grid_rows(["slide"], [14], [1]))
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(previous)


def test_list_says_a_variant_runs_here_and_names_its_limit_at_the_default_size():
    small, default = Case(variant="", height=14, width=14, kernel_size=3), Case(variant="")
    flex = runs_here(av.get("flex-local-masked"), small, default)
    assert flex.startswith(f"yes; not at {default.height}x{default.width} forward: eager FlexAttention is dense")
    assert runs_here(av.get("im2col"), small, default) == "yes"


def test_gate_without_a_current_file_says_how_to_make_one(tmp_path, capsys):
    assert run_bench.main(["gate", "--baseline", "results/baseline", "--current", str(tmp_path / "current.csv")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--out" in err and "--preset ci" in err


@pytest.mark.slow  # a real process's piped stderr: a subprocess sweep
def test_messages_on_a_piped_stderr_are_not_wrapped_mid_phrase(tmp_path):
    bad = tmp_path / "r.csv"
    bad.write_text("not,a,results,file\n")
    long_name = tmp_path / ("a-rather-long-folder-name-" * 3) / "out.csv"
    done = subprocess.run([sys.executable, "run_bench.py", "--variants", "window", "--resolutions", "14", "--batch", "1",
                           "--min-run-s", "0.01", "--max-run-s", "0.02", "--no-plots", "--out", str(long_name)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("run ")]  # the run's first line, whole
    assert str(long_name) in line and len(line) > 80


def test_output_targets_that_are_not_results_files_are_refused_before_measuring(tmp_path, capsys):
    fifo, link, folder = tmp_path / "fifo", tmp_path / "link.csv", tmp_path / "dir.csv"
    os.mkfifo(fifo)
    link.symlink_to(tmp_path / "real.csv")
    folder.mkdir()
    under_a_file = tmp_path / "r.csv"
    under_a_file.write_text("")
    for target, says in ((fifo, "a device, FIFO or socket"), (link, "symbolic link"), (folder, "is a folder"),
                         (under_a_file / "x.csv", "is not a folder"), (__import__("pathlib").Path("/dev/null"), "a device")):
        assert run_bench.main(["--variants", "window", "--resolutions", "14", "--out", str(target)]) == 2, target
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and says in err, err
    assert not (tmp_path / "real.csv").exists() and stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_an_unexpected_failure_is_not_exit_1(monkeypatch, capsys):
    from bench.cli import listing

    monkeypatch.setattr(listing, "runs_here", lambda *args: 1 / 0)  # a planted bug
    assert run_bench.main(["list"]) == 70
    assert "internal error" in capsys.readouterr().err


def test_markup_and_paths_from_a_file_stay_text(tmp_path, capsys, monkeypatch):
    from synthetic_results import row

    evil = [row("im2col", run_id="../../escaped"), row("slide", device="[link=http://x]cpu[/link]", reason="[bold]x[/bold]")]
    csv = write_csv(tmp_path / "r.csv", evil)
    assert run_bench.main(["gate", "--baseline", str(csv), "--current", str(csv)]) == 0  # no markup error, no exit 1
    assert "[link=http://x]cpu[/link]" in capsys.readouterr().out
    plots_root = tmp_path / "plots"
    monkeypatch.setenv("BENCH_PLOTS_DIR", str(plots_root))
    assert run_bench.main(["plot", str(csv)]) == 0
    drawn = [p for p in tmp_path.rglob("*.png")]
    assert drawn and all(plots_root in p.parents for p in drawn)  # a run id never names a folder outside plots/


def test_orphan_temporary_copies_of_a_killed_writer_are_removed(tmp_path):
    from synthetic_results import row

    orphan = tmp_path / ".r.csv.k1ll3d.tmp"  # a writer killed between writing its copy and renaming it
    orphan.write_text("a whole copy of the file")
    write_csv(tmp_path / "r.csv", [row("im2col")])
    assert not orphan.exists() and len(results.load(tmp_path / "r.csv")) == 1


def test_resuming_an_empty_file_runs_the_whole_sweep(tmp_path, capsys):
    out = tmp_path / "r.csv"
    out.write_text("")  # what a first append that failed leaves
    assert run_bench.main(["--variants", "window", "--resolutions", "14", "--batch", "1", "--min-run-s", "0.01",
                           "--max-run-s", "0.02", "--no-plots", "--resume", str(out)]) == 0
    assert list(results.load(out)["variant"]) == ["window"]


def test_a_full_disk_mid_sweep_is_one_line_and_keeps_the_rows_before(tmp_path, capsys, monkeypatch):
    import errno

    from bench.execution import sweep as sweep_module

    real, calls = sweep_module.append_rows, []

    def fills_up(path, rows, wait_s=None):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, rows, wait_s)

    monkeypatch.setattr(sweep_module, "append_rows", fills_up)
    out = tmp_path / "r.csv"
    assert run_bench.main(["--variants", "window,im2col", "--resolutions", "14", "--batch", "1", "--min-run-s", "0.01",
                           "--max-run-s", "0.02", "--no-plots", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "No space left on device" in err[-1] and "--resume" in err[-1] and "Traceback" not in "\n".join(err)
    assert list(results.load(out)["variant"]) == ["window"]
