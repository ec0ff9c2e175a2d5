"""An independent plain timing of one case: build the variant, time its forward call, print the median in ms.

This is the yardstick the harness is measured against (`run_bench.py fidelity`), so it
deliberately shares nothing with bench.measure: no warm-up rule, no adaptive stopping, no
oracle check, no worker protocol; its own seeded inputs; just the variant's closure and
torch.utils.benchmark's blocked_autorange, in a fresh process whose environment (allocator,
threads) the caller sets. Run: `python -m bench.execution.plain_timing VARIANT B H W HEADS D K THREADS [PACE_S]`.
With PACE_S it stops itself (SIGSTOP) before timing and after each PACE_S of timed blocks, so
the fidelity command can take turns between it and the harness's workers.
"""

from __future__ import annotations

import os
import signal
import sys

import torch
from torch.utils import benchmark

import attention_variants as av
from attention_variants.case import Case

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def plain_median_ms(case: Case, threads: int, min_run_time: float = 1.0, pace_s: float = 0.0) -> float:
    """Return the median ms of the variant's forward call on random inputs, after two untimed calls."""
    timed = [0.0]

    def take_turns(number: int, seconds: float) -> None:
        timed[0] += seconds
        if pace_s and timed[0] >= pace_s:
            timed[0] = 0.0
            os.kill(os.getpid(), signal.SIGSTOP)

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(1234)
    shape = (case.batch, case.heads, case.height, case.width, case.head_dim)
    q, k, v = (torch.randn(shape, generator=generator) for _ in range(3))
    prepared = av.get(case.variant).build(case, q, k, v)
    with torch.no_grad():
        for _ in range(2):
            prepared.fn(*prepared.inputs)
        timer = benchmark.Timer("fn(*inputs)", globals={"fn": prepared.fn, "inputs": prepared.inputs}, num_threads=threads)
        if pace_s:
            os.kill(os.getpid(), signal.SIGSTOP)
        return timer.blocked_autorange(min_run_time=min_run_time, callback=take_turns).median * 1e3


def _die_with_parent() -> None:
    # Stopped between turns, this process would outlive a fidelity command killed by SIGKILL; the kernel
    # kills it instead when its parent ends (Linux; elsewhere nothing is done). Its own prctl call, not
    # bench.execution.hygiene's twin: this yardstick shares no code with the harness (tests/test_trust.py).
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent ended before the call
        os._exit(1)


def main(argv: list[str]) -> int:
    """Print the plain median of the case given on the command line; return 0."""
    _die_with_parent()
    variant, *numbers = argv
    batch, height, width, heads, head_dim, kernel, threads = map(int, numbers[:7])
    case = Case(variant=variant, batch=batch, height=height, width=width, heads=heads, head_dim=head_dim, kernel_size=kernel)
    print(f"{plain_median_ms(case, threads, pace_s=float(numbers[7]) if len(numbers) > 7 else 0.0):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
