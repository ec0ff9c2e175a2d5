"""The README is a front door that cannot drift: short, its links resolve, and every command in it runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bench.cli import build_parser
from conftest import run_main

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
FAST = ["--min-run-s", "0.01", "--max-run-s", "0.02", "--threads", "1", "--cases-per-worker", "0", "--no-plots"]


def _commands() -> list[str]:
    """Return every `python run_bench.py ...` command of the README: in code blocks and in the commands table."""
    found = re.findall(r"python run_bench\.py[^`\n#]*", README)
    return sorted({command.strip() for command in found})


def _argv(command: str, csv_path: Path) -> list[str]:
    """Return the command's arguments with its placeholders filled: a real results CSV, a revision, no [optional] parts."""
    command = re.sub(r"\[[^\]]*\]", "", command)
    filled = command.replace("R.csv", str(csv_path)).replace("A.csv", str(csv_path)).replace("B.csv", str(csv_path))
    filled = filled.replace("M.csv", str(csv_path.with_name("merged.csv"))).replace("REV", "HEAD")
    return shlex.split(filled)[2:]


def test_the_readme_is_short_and_its_links_resolve():
    assert len(README.splitlines()) <= 150
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (REPO / target).exists(), target


def test_every_readme_command_is_one_the_cli_takes(tmp_path):
    parser = build_parser()
    commands = _commands()
    assert len(commands) >= 10
    for command in commands:
        argv = _argv(command, tmp_path / "r.csv")
        if not argv or argv[0] not in parser.commands:
            argv.insert(0, "sweep")
        args, extra = parser.parse_known_args(argv)  # argparse exits on an unknown flag or value
        assert not extra or args.command == "gate", (command, extra)


@pytest.mark.slow
def test_the_readme_example_runs_reports_and_loads(tmp_path, monkeypatch):
    """The code blocks as a newcomer runs them, in a scratch folder, timed briefly."""
    monkeypatch.chdir(tmp_path)
    sweep, report = [c for c in _commands() if "results/mine.csv" in c]
    assert run_main([*shlex.split(sweep)[2:], *FAST])[0] == 0
    assert run_main(shlex.split(report)[2:] + ["--no-plots"])[0] == 0
    assert (tmp_path / "results" / "mine.md").is_file()
    snippet = re.search(r"```python\n(from bench.results import load, load_samples.*?)```", README, re.S).group(1)
    scope: dict[str, object] = {}
    exec(snippet, scope)  # noqa: S102  the README's own lines
    frame, blocks = scope["frame"], scope["blocks"]
    assert len(frame) == 48 and (frame["status"].isin(["ok", "skipped"])).all()
    assert len(blocks) == frame["n_measurements"].sum()
