"""One case, measured: support check, oracle check, first call, timing and memory -> a Measured record.

This runs in whichever process measures the case (a worker, or the sweep itself with
--cases-per-worker 0). A failure of the variant is data: it becomes the result's status.
"""

from __future__ import annotations

import gc
from dataclasses import replace
from typing import Callable

import torch

import attention_variants as av
from attention_variants.case import Case
from bench.measure import memory
from bench.measure.callables import first_call
from bench.measure.correctness import oracle_check, verdict
from bench.measure.failures import classify
from bench.measure.gradients import check_gradients, differentiable_inputs
from bench.measure.inputs import make_inputs
from bench.measure.machine import device_unavailable
from bench.measure.record import Measured
from bench.measure.runtimes import RuntimeFailure, runtime_unavailable
from bench.measure.settings import Settings
from bench.measure.timing import measure


def release_memory(case: Case, status: object) -> None:
    """Free what a measured case left behind, so the next case in this process starts from a clean allocator."""
    if status == "skipped":  # a skipped case built nothing; a full collection costs ~0.1 s
        return
    gc.collect()
    if case.device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()  # a long sweep otherwise fragments the allocator


def measure_case(case: Case, settings: Settings) -> Measured:
    """Return the result of one case: skipped with the reason, failed with the error's class, or measured."""
    return _if_supported(case, lambda variant: _measure_supported(variant, case, settings))


def prime_case(case: Case, settings: Settings) -> Measured:
    """Build the case and call it once, untimed (status ok, reason `primed`): a variant's lazy
    initialisation (imports, kernel selection: seconds for natten) then happens before this
    process times anything, and processes started together pay it together."""
    def prime(variant: av.Variant) -> Measured:
        # Eager: the variant's own lazy set-up. A traced runtime's export and compile are what
        # its row's export_ms and compile_ms measure, so they are not paid here first.
        eager = case.replace(runtime="eager")
        first_call(variant.build(eager, *make_inputs(eager, settings.seed + 1)), eager)
        return Measured("ok", "primed")
    return _if_supported(case, prime)


def _if_supported(case: Case, run: Callable[[av.Variant], Measured]) -> Measured:
    try:
        variant = av.get(case.variant)
        reason = device_unavailable(case.device) or runtime_unavailable(case) or variant.supports(case)
        if reason:
            return Measured("skipped", reason)
        return run(variant)
    except Exception as err:  # a failing variant (or a plugin's supports() raising) is data, not the end of the sweep
        return Measured(*classify(err))


def _measure_supported(variant: av.Variant, case: Case, settings: Settings) -> Measured:
    check = oracle_check(variant, case, settings.seed)
    # Other inputs than the oracle check's; leaves that record build()'s layout change when gradients are checked.
    leaves = (differentiable_inputs if case.needs_grad else make_inputs)(case, settings.seed + 1)
    prepared = variant.build(case, *leaves)
    try:
        called = first_call(prepared, case, settings.threads, settings.seed)
    except RuntimeFailure as err:  # a variant the exporter cannot take is an error row with the exporter's reason
        return Measured("error", str(err))
    except Exception as err:  # a variant that does not compile is an error row that says so
        if not case.traced:
            raise
        step = "torch.compile" if case.runtime == "inductor" else f"{case.runtime} (first call)"
        return Measured("error", f"{step} failed: {classify(err)[1]}")
    gradients = check_gradients(variant, case, settings.seed, prepared, leaves, called) if case.needs_grad else None
    called, backend = replace(called, returned=()), prepared.backend  # the first call's gradients are not held while timing
    del prepared, leaves
    timing = measure(called.fn, case.device, settings.threads, settings.warmup_s, settings.min_run_s, settings.max_run_s,
                     settle=settings.allocator == "steady" and case.device == "cpu", pace_s=settings.pace_s)
    peak_mb = memory.peak_memory_mb(called.fn, case.device)
    judged = verdict(check, case.dtype, case.traced, called.drift)
    reasons = [judged.reason] if judged.reason else []
    reasons += [gradients.reason] if gradients and gradients.reason else []
    notes = [check.note] if check.note else []
    if called.drift:
        notes.append(f"{case.runtime} vs eager drift {called.drift:.3g} included in max_abs_err")
    if gradients and gradients.note:
        notes.append(gradients.note)
    if timing.noisy:
        notes.append(f"noisy: IQR is {timing.iqr_ms / timing.median_ms:.0%} of the median")
    gradient_errors = {} if gradients is None else dict(
        grad_max_abs_err=gradients.max_abs_err, grad_tolerance=gradients.tolerance,
        grad_mean_abs_err=gradients.mean_abs_err, grad_mean_tolerance=gradients.mean_tolerance)
    return Measured(
        "mismatch" if reasons else "ok", "; ".join(reasons + notes), timing.median_ms, timing.iqr_ms, timing.min_ms,
        timing.n_measurements, tuple(timing.block_times_ms), **timing.per_call, peak_mem_mb=peak_mb,
        max_abs_err=judged.max_abs_err, tolerance=judged.tolerance, mean_abs_err=check.mean_error,
        mean_tolerance=check.mean_tolerance, **gradient_errors, compile_ms=called.compile_ms,
        backend="; ".join(filter(None, (backend, called.runtime_backend))), export_ms=called.export_ms,
    )

