"""The closure that is timed: forward, or forward then backward, eager or compiled; and its first call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

import attention_variants as av
from attention_variants.case import Case
from bench.measure.timing import synchronize


def timed_callable(prepared: av.Prepared, case: Case) -> Callable[..., object]:
    """Return the closure to time: forward, or forward then backward to the inputs.

    Called with no argument it runs the timed (maybe compiled) code; `closure(prepared.fn)`
    runs the eager code on the same inputs (and output gradient), for the drift check.
    """
    if case.compiled:
        # A fresh dynamo state per case: otherwise a worker's second case of the same variant
        # reuses the first one's frame cache, gets a dynamic-shape recompile (slower, generic
        # kernels) and, past the recompile limit, silently falls back to eager.
        torch._dynamo.reset()
    timed = torch.compile(prepared.fn) if case.compiled else prepared.fn
    if not case.needs_grad:
        inputs = prepared.inputs
        return lambda fn=timed: fn(*inputs)
    inputs = tuple(t.detach().requires_grad_(True) for t in prepared.inputs)
    grad_out = torch.randn_like(timed(*inputs))

    def forward_backward(fn=timed):
        return torch.autograd.grad(fn(*inputs), inputs, grad_out)

    return forward_backward


@dataclass(frozen=True)
class FirstCall:
    """The timed closure after its first call: the compile time (compiled only) and the compiled-vs-eager drift."""

    fn: Callable[[], object]
    compile_ms: float | None
    drift: float


def first_call(prepared: av.Prepared, case: Case) -> FirstCall:
    """Return the timed closure after calling it once (which compiles it under torch.compile).

    The drift is max |compiled - eager| on the timed inputs: of the output, or of the input
    gradients for forward_backward. The oracle checks the eager forward, so for a forward
    case |compiled - oracle| <= oracle error + drift; for forward_backward the drift catches
    a compiled backward that computes other gradients than the eager one.
    """
    started = time.perf_counter()
    fn = timed_callable(prepared, case)
    first = fn()  # under torch.compile this call compiles
    synchronize(case.device)
    if not case.compiled:
        return FirstCall(fn, None, 0.0)
    compile_ms = (time.perf_counter() - started) * 1e3
    with torch.set_grad_enabled(case.needs_grad):
        eager = fn(prepared.fn)
    pairs = zip(first, eager) if case.needs_grad else [(first, eager)]
    drift = max((a.detach().double() - b.detach().double()).abs().max().item() for a, b in pairs)
    return FirstCall(fn, compile_ms, drift)
