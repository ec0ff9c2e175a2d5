"""The closure that is timed: forward, or forward then backward, under the case's runtime; and its first call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

import attention_variants as av
from attention_variants.case import Case
from bench.measure.inputs import make_grad_out
from bench.measure.runtimes import Runnable, runnable
from bench.measure.timing import synchronize


def timed_callable(prepared: av.Prepared, case: Case, threads: int = 1, seed: int = 0) -> Runnable:
    """Return the closure to time (forward, or forward then backward to the inputs) and its export cost.

    Called with no argument it runs the timed code (under the case's runtime); `closure(prepared.fn)`
    runs the eager code on the same inputs (and output gradient), for the drift check. A
    forward_backward closure returns the output and the inputs' gradients, for an upstream
    gradient drawn from `seed` (bench.measure.inputs.make_grad_out) in the variant's layout.
    """
    timed = runnable(prepared.fn, prepared.inputs, case, threads)
    if not case.needs_grad:
        inputs = prepared.inputs
        return Runnable(lambda fn=timed.fn: fn(*inputs), timed.export_ms, timed.backend)
    inputs = tuple(t.detach().requires_grad_(True) for t in prepared.inputs)
    grad_out = _native(prepared, timed.fn(*inputs), make_grad_out(case, seed))

    def forward_backward(fn=timed.fn):
        out = fn(*inputs)
        return (out, *torch.autograd.grad(out, inputs, grad_out))

    return Runnable(forward_backward, timed.export_ms, timed.backend)


def _native(prepared: av.Prepared, probe: torch.Tensor, canonical: torch.Tensor) -> torch.Tensor:
    """Return a canonical output gradient in the variant's output layout (the backward of its to_canonical)."""
    placeholder = torch.zeros_like(probe.detach(), requires_grad=True)
    with torch.enable_grad():
        return torch.autograd.grad(prepared.to_canonical(placeholder), placeholder, canonical)[0].detach()


@dataclass(frozen=True)
class FirstCall:
    """The timed closure after its first call: what the runtime cost to get there, what it returned, its drift from eager."""

    fn: Callable[[], object]
    compile_ms: float | None  # traced runtimes: compiling (or building the session) and the first call
    drift: float  # max |traced - eager| of the output
    export_ms: float | None = None
    grad_drift: float = 0.0  # max |traced - eager| of the inputs' gradients (forward_backward)
    returned: tuple = ()  # forward_backward: the first call's output and native input gradients
    runtime_backend: str | None = None  # what the runtime made of the graph (bench.measure.runtimes.Runnable.backend)


def first_call(prepared: av.Prepared, case: Case, threads: int = 1, seed: int = 0) -> FirstCall:
    """Return the timed closure after calling it once (which compiles it under torch.compile).

    The drifts are max |traced - eager| on the timed inputs, of the output and (forward_backward)
    of the input gradients. The oracle checks the eager forward, so for a forward case
    |traced - oracle| <= oracle error + drift; the gradients the first call returned are what the
    gradient check compares with the oracle's (bench/measure/gradients.py).
    """
    started = time.perf_counter()
    timed = timed_callable(prepared, case, threads, seed)
    first = timed.fn()  # under torch.compile this call compiles
    synchronize(case.device)
    returned = tuple(first) if case.needs_grad else ()
    if not case.traced:
        return FirstCall(timed.fn, None, 0.0, returned=returned)
    compile_ms = (time.perf_counter() - started) * 1e3 - (timed.export_ms or 0.0)
    with torch.set_grad_enabled(case.needs_grad):
        eager = timed.fn(prepared.fn)
    pairs = list(zip(first, eager)) if case.needs_grad else [(first, eager)]
    drifts = [(a.detach().double() - b.detach().double()).abs().max().item() for a, b in pairs]
    return FirstCall(timed.fn, compile_ms, drifts[0], timed.export_ms, max(drifts[1:], default=0.0), returned, timed.backend)
