"""Test-only plugin: variant `slowed`, Slide attention with an injected delay (a known regression).

Load it with `--plugin tests.plugins.slowed`. Each timed call runs the real Slide attention,
then busy-waits until (factor - 1) times that call's own duration has passed, so every call
takes `factor` times as long as Slide at that moment, whatever the machine's load. The
factor comes from the environment variable BENCH_SLOWED_FACTOR (default 1.3; 1.0 = no delay).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import torch

from attention_variants.case import Case
from attention_variants.registry import Prepared, Variant, register
from attention_variants.slide import build_slide

FACTOR_ENV = "BENCH_SLOWED_FACTOR"
DEFAULT_FACTOR = 1.3


def slow_factor() -> float:
    """Return the delay factor from BENCH_SLOWED_FACTOR (a number >= 1)."""
    text = os.environ.get(FACTOR_ENV, str(DEFAULT_FACTOR))
    try:
        factor = float(text)
    except ValueError:
        raise ValueError(f"bad {FACTOR_ENV} {text!r}: expected a number >= 1") from None
    if not factor >= 1:
        raise ValueError(f"bad {FACTOR_ENV} {text!r}: expected a number >= 1")
    return factor


def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return Slide's closure wrapped so that each call lasts `slow_factor()` times as long."""
    prepared = build_slide(case, q, k, v)
    factor, inner = slow_factor(), prepared.fn

    def slowed(*inputs: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = inner(*inputs)
        deadline = start + (time.perf_counter() - start) * factor
        while time.perf_counter() < deadline:  # spin, not sleep: sleep overshoots by ~0.1 ms
            pass
        return out

    return replace(prepared, fn=slowed, backend=f"slide x{factor:g}")


slow_factor()  # a bad factor fails at import, as one line through --plugin
register(Variant("slowed", "local-zero-pad", build, description=f"test only: slide with a delay (x ${FACTOR_ENV})"))
