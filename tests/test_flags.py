"""Numbers and flags: every integer is ASCII digits within what a tensor can hold, and every command takes the same flags.

Each bad value is one line on stderr and exit 2, before anything runs; all in-process (tests/conftest.py run_main).
"""

from __future__ import annotations

import pytest

from bench.execution.ab import reserved_flag
from conftest import run_main

BAD = [
    (["--threads", "²"], "argument --threads: '²' is not an integer (ASCII digits 0-9)"),
    (["--threads", "٣"], "argument --threads: '٣' is not an integer"),  # int() would read it as 3
    (["--seed", "-1"], "argument --seed: -1 is out of range: expected 0 to 9223372036854775807"),
    (["--repeats", "0"], "argument --repeats: 0 is out of range"),
    (["--cases-per-worker", "1.5"], "argument --cases-per-worker: '1.5' is not an integer"),
    (["--batch", "²"], "bad batch value '²': expected an integer in ASCII digits"),
    (["--resolutions", "٣x4"], "bad resolution '٣x4': expected N or HxW in ASCII digits"),
    (["--batch", "3000000000"], "batch value 3000000000 is larger than torch can index in one axis (2147483647)"),
    (["--batch", "2147483647", "--resolutions", "46340", "--heads", "64", "--head-dim", "4096"],
     "more than a torch tensor can hold"),
    (["--batch", "64", "--resolutions", "224", "--max-memory-gb", "0.1"],
     "the float32 case b64 h2 224x224 d32 needs 2.3 GiB for q, k and v alone, more than --max-memory-gb 0.1"),
    (["models", "--threads", "x"], "argument --threads: 'x' is not an integer"),
    (["models", "--batch", "²", "--no-plots"], "bad batch value '²': expected a positive integer in ASCII digits"),
    (["models", "--rounds", "0"], "argument --rounds: 0 is out of range"),
    (["fidelity", "--batch", "1,x", "--no-plots"], "bad --batch '1,x': expected positive integers in ASCII digits"),
    (["fidelity", "--seed", "٣"], "argument --seed: '٣' is not an integer"),
    (["gate", "--base-rev", "HEAD", "--rounds", "²"], "argument --rounds: '²' is not an integer"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(argv) for argv, _ in BAD])
def test_a_bad_number_is_one_line_and_exit_2(argv, message):
    status, lines = run_main([*argv, "--no-plots"] if argv[0] not in ("models", "fidelity", "gate") else argv)
    assert status == 2 and len(lines) == 1 and message in lines[0], lines


def test_no_plots_is_accepted_by_every_command_that_measures():
    assert reserved_flag(["--no-plots", "--variants", "im2col"]) is None  # gate --base-rev passes it to its sweeps
    for argv in (["models", "--no-plots", "--batch", "0"], ["fidelity", "--no-plots", "--batch", "0"]):
        status, lines = run_main(argv)  # parsed: the error is the batch's, not an unknown --no-plots
        assert status == 2 and "--no-plots" not in lines[0] and "batch" in lines[0], lines
