import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import run_bench

REPO = Path(__file__).resolve().parent.parent
# The cluster command's submitter looks at its jobs every 2 s; a test's jobs take seconds, so look often (inherited by
# the `python run_bench.py` processes the tests start).
os.environ.setdefault("BENCH_CLUSTER_POLL_S", "0.3")


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python run_bench.py ARGS` from the repository root and capture its output."""
    return subprocess.run(
        [sys.executable, str(REPO / "run_bench.py"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


def run_main(argv: list[str]) -> tuple[int, list[str]]:
    """Return the exit status and stderr lines of run_bench.main(argv), run in this process (argparse's exits included)."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = run_bench.main(argv)
        except SystemExit as exit_:  # a flag argparse refuses
            status = exit_.code
    return status, stderr.getvalue().strip().splitlines()


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True)
def figures_out_of_the_checkout(tmp_path_factory, monkeypatch):
    """Sweeps and reports in the tests draw into a temporary folder, never into the checkout's plots/."""
    monkeypatch.setenv("BENCH_PLOTS_DIR", str(tmp_path_factory.mktemp("plots")))
