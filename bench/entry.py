"""The command line's entry (`run_bench.py`, `local-attention-bench`): start a sweep's first worker, then run the command.

The worker starts before bench.cli is imported (torch, pandas, the variants: seconds), so that
both import at once (bench/execution/early.py).
"""

from __future__ import annotations

import atexit
import os
import sys

from bench.execution import early
from bench.measure import probes


def main(argv: list[str] | None = None) -> int:
    """Run the command of argv (sys.argv[1:] by default); return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    early.launch(argv)
    probes.start()  # the CPU's name and a load sample, while torch is imported
    try:
        from bench.cli import main as run_command

        return run_command(argv)
    finally:
        early.discard()  # not adopted: a sweep that stopped before its first case, or one that runs no workers


def run() -> None:
    """Run the command of sys.argv and exit with its status, skipping the interpreter's teardown of torch and pandas
    (about a second on this machine): the exit handlers (temporary folders) run and the output is flushed first."""
    status = main()
    atexit._run_exitfuncs()  # what a normal exit runs before tearing the modules down
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
