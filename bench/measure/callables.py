"""The closure that is timed: forward, or forward then backward, under the case's runtime; and its first call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

import attention_variants as av
from attention_variants.case import Case
from bench.measure.runtimes import Runnable, runnable
from bench.measure.timing import synchronize


def timed_callable(prepared: av.Prepared, case: Case, threads: int = 1) -> Runnable:
    """Return the closure to time (forward, or forward then backward to the inputs) and its export cost.

    Called with no argument it runs the timed code (under the case's runtime); `closure(prepared.fn)`
    runs the eager code on the same inputs (and output gradient), for the drift check.
    """
    timed = runnable(prepared.fn, prepared.inputs, case, threads)
    if not case.needs_grad:
        inputs = prepared.inputs
        return Runnable(lambda fn=timed.fn: fn(*inputs), timed.export_ms)
    inputs = tuple(t.detach().requires_grad_(True) for t in prepared.inputs)
    grad_out = torch.randn_like(timed.fn(*inputs))

    def forward_backward(fn=timed.fn):
        return torch.autograd.grad(fn(*inputs), inputs, grad_out)

    return Runnable(forward_backward, timed.export_ms)


@dataclass(frozen=True)
class FirstCall:
    """The timed closure after its first call: what the runtime cost to get there, and its drift from eager."""

    fn: Callable[[], object]
    compile_ms: float | None  # traced runtimes: compiling (or building the session) and the first call
    drift: float
    export_ms: float | None = None


def first_call(prepared: av.Prepared, case: Case, threads: int = 1) -> FirstCall:
    """Return the timed closure after calling it once (which compiles it under torch.compile).

    The drift is max |traced - eager| on the timed inputs: of the output, or of the input
    gradients for forward_backward. The oracle checks the eager forward, so for a forward
    case |traced - oracle| <= oracle error + drift; for forward_backward the drift catches
    a compiled backward that computes other gradients than the eager one.
    """
    started = time.perf_counter()
    timed = timed_callable(prepared, case, threads)
    first = timed.fn()  # under torch.compile this call compiles
    synchronize(case.device)
    if not case.traced:
        return FirstCall(timed.fn, None, 0.0)
    compile_ms = (time.perf_counter() - started) * 1e3 - (timed.export_ms or 0.0)
    with torch.set_grad_enabled(case.needs_grad):
        eager = timed.fn(prepared.fn)
    pairs = zip(first, eager) if case.needs_grad else [(first, eager)]
    drift = max((a.detach().double() - b.detach().double()).abs().max().item() for a, b in pairs)
    return FirstCall(timed.fn, compile_ms, drift, timed.export_ms)
