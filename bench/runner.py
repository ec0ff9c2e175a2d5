"""Runs a sweep: each case -> one row (measured, checked against its oracle, or why not)."""

from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import torch

import attention_variants as av
from attention_variants.case import DTYPES, Case
from attention_variants.reference import oracle
from bench import env, memory, roofline, timing
from bench.isolation import Isolation, WorkerPool
from bench.messages import first_line
from bench.results import CASE_KEY, append_rows

# Largest |variant - float64 oracle| accepted per dtype; above it the row is a `mismatch`.
TOLERANCE = {"float64": 1e-9, "float32": 1e-4, "float16": 1e-2, "bfloat16": 6e-2}
# The oracle gathers k*k neighbours in float64: past this many elements, check a reduced copy.
ORACLE_ELEMENT_BUDGET = 10_000_000


@dataclass(frozen=True)
class Settings:
    """How cases are measured (the same for every case of a run)."""

    threads: int
    warmup_s: float = 0.05
    min_run_s: float = 0.1
    max_run_s: float = 1.0
    seed: int = 0
    # "device/dtype" -> [peak GFLOP/s, peak GB/s], calibrated once per run by the sweep's own
    # process and handed to every worker, so that all rows of a run share one roofline.
    peaks: dict[str, list[float]] = field(default_factory=dict)


def make_inputs(case: Case, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return seeded canonical q, k, v (batch, heads, height, width, head_dim) on the case's device."""
    generator = torch.Generator().manual_seed(seed)
    shape = (case.batch, case.heads, case.height, case.width, case.head_dim)
    return tuple(torch.randn(shape, generator=generator).to(case.device, case.torch_dtype) for _ in range(3))


def analytic_gflop(case: Case) -> float:
    """Return the useful GFLOP of the case: QK^T and AV over the k*k keys each query sees.

    2 FLOP per multiply-add, 2 matmul-like products, softmax ignored; backward counts as
    twice the forward (gradients for q, k, v), so forward_backward is 3x.
    """
    # k*k keys per query (a window of w = k has as many as the k x k square), 2 products, 2 FLOP each
    forward = 4 * case.neighbour_elements
    return forward * (3 if case.needs_grad else 1) / 1e9


def oracle_error(variant: av.Variant, case: Case, seed: int) -> tuple[float, str]:
    """Return max |output - float64 oracle| of the variant on the case, and a note on what was checked."""
    checked = case if case.neighbour_elements <= ORACLE_ELEMENT_BUDGET else case.replace(batch=1, heads=1)
    q, k, v = make_inputs(checked, seed)
    prepared = variant.build(checked, q, k, v)
    with torch.no_grad():
        out = prepared.to_canonical(prepared.fn(*prepared.inputs))
    expected = oracle(variant.family, q, k, v, checked.kernel_size, **prepared.oracle_kwargs)
    error = (out.detach().to("cpu", torch.float64) - expected).abs().max().item()
    note = "" if checked is case else "max_abs_err on a reduced copy (batch 1, heads 1)"
    return error, note


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


# Allocation failures that torch and the C++ runtime report as RuntimeError rather than MemoryError.
_ALLOCATION_FAILURES = ("out of memory", "can't allocate memory", "cannot allocate memory", "std::bad_alloc")


def _failure(err: BaseException) -> tuple[str, str]:
    out_of_memory = isinstance(err, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(err, RuntimeError) and any(text in str(err).lower() for text in _ALLOCATION_FAILURES))
    return ("oom" if out_of_memory else "error"), f"{type(err).__name__}: {first_line(err)[:300]}"


def failure_columns(err: BaseException) -> dict[str, object]:
    """Return the status and reason columns of a case that raised err."""
    status, reason = _failure(err)
    return {"status": status, "reason": reason}


def _first_call(prepared: av.Prepared, case: Case) -> tuple[Callable[[], object], float | None, float]:
    """Return the timed closure after its first call, the compile time (compiled only), and the drift.

    The drift is max |compiled - eager| on the timed inputs: of the output, or of the input
    gradients for forward_backward. The oracle checks the eager forward, so for a forward
    case |compiled - oracle| <= oracle error + drift; for forward_backward the drift catches
    a compiled backward that computes other gradients than the eager one.
    """
    started = time.perf_counter()
    fn = timed_callable(prepared, case)
    first = fn()  # under torch.compile this call compiles
    timing.synchronize(case.device)
    if not case.compiled:
        return fn, None, 0.0
    compile_ms = (time.perf_counter() - started) * 1e3
    with torch.set_grad_enabled(case.needs_grad):
        eager = fn(prepared.fn)
    pairs = zip(first, eager) if case.needs_grad else [(first, eager)]
    return fn, compile_ms, max((a.detach().double() - b.detach().double()).abs().max().item() for a, b in pairs)


def measure_case(case: Case, settings: Settings) -> dict[str, object]:
    """Return the measured columns of one case (status, timing, memory, error vs the oracle, roofline)."""
    variant = av.get(case.variant)
    reason = env.device_unavailable(case.device) or variant.supports(case)
    if reason:
        return {"status": "skipped", "reason": reason}
    try:
        error, note = oracle_error(variant, case, settings.seed)
        q, k, v = make_inputs(case, settings.seed + 1)
        prepared = variant.build(case, q, k, v)
        try:
            fn, compile_ms, drift = _first_call(prepared, case)
        except Exception as err:  # a variant that does not compile is an error row that says so
            if not case.compiled:
                raise
            return {"status": "error", "reason": f"torch.compile failed: {_failure(err)[1]}"}
        error += drift
        measured = timing.measure(fn, case.device, settings.threads, settings.warmup_s, settings.min_run_s, settings.max_run_s)
        peak_mb = memory.peak_memory_mb(fn, case.device)
        calibrated = settings.peaks.get(f"{case.device}/{case.dtype}")
        peaks = roofline.Peaks(*calibrated) if calibrated else roofline.peaks(case.device, case.torch_dtype, settings.threads)
    except Exception as err:  # a failing variant is data, not the end of the sweep
        status, reason = _failure(err)
        return {"status": status, "reason": reason}
    notes = [note] if note else []
    if drift:
        what = "gradient drift" if case.needs_grad else "drift"
        notes.append(f"compiled vs eager {what} {drift:.3g} included in max_abs_err")
    status = "ok"
    if not error <= TOLERANCE[case.dtype]:
        status = "mismatch"
        notes.insert(0, f"max_abs_err {error:.3g} > tolerance {TOLERANCE[case.dtype]:g} for {case.dtype}")
    if measured.noisy:
        notes.append(f"noisy: IQR is {measured.iqr_ms / measured.median_ms:.0%} of the median")
    gflop = analytic_gflop(case)
    return {
        "status": status,
        "reason": "; ".join(notes),
        "median_ms": measured.median_ms,
        "iqr_ms": measured.iqr_ms,
        "min_ms": measured.min_ms,
        "n_measurements": measured.n_measurements,
        "peak_mem_mb": peak_mb,
        "throughput_per_s": case.batch / (measured.median_ms / 1e3),
        "gflop": gflop,
        "gflop_per_s": gflop / (measured.median_ms / 1e3),
        "max_abs_err": error,
        "backend": prepared.backend,
        "compile_ms": compile_ms,
        **roofline.roofline_columns(gflop, case, measured.median_ms, peaks),
    }


def calibrate_peaks(cases: list[Case], settings: Settings) -> dict[str, list[float]]:
    """Return the roofline peaks of every usable (device, dtype) of the cases, measured now."""
    peaks = dict(settings.peaks)
    for device, dtype in dict.fromkeys((case.device, case.dtype) for case in cases):
        if f"{device}/{dtype}" not in peaks and env.device_unavailable(device) is None:
            measured = roofline.peaks(device, DTYPES[dtype], settings.threads)
            peaks[f"{device}/{dtype}"] = [measured.gflop_per_s, measured.gb_per_s]
    return peaks


def case_row(case: Case, run_id: str, machine: dict[str, object]) -> dict[str, object]:
    """Return the columns of a case's row that do not depend on measuring it."""
    return {
        "run_id": run_id,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **case.key(),
        "family": av.get(case.variant).family,
        "device_name": env.device_name(case.device),
        **machine,
        "gflop": analytic_gflop(case),
    }


def run_case(case: Case, settings: Settings, run_id: str, machine: dict[str, object]) -> dict[str, object]:
    """Return the full results row of one case, measured in this process."""
    row = case_row(case, run_id, machine)
    try:
        row.update(measure_case(case, settings))
    except Exception as err:  # e.g. a plugin's supports() raising: still a row
        row.update(failure_columns(err))
    if row["status"] != "skipped":  # a skipped case built nothing; a full collection costs ~0.1 s
        gc.collect()
        if case.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()  # a long sweep otherwise fragments the allocator
    return row


def pending(cases: list[Case], recorded: Iterable[tuple[str, ...]]) -> list[Case]:
    """Return the cases whose CASE_KEY (as text) is not among `recorded`, in order."""
    done = set(recorded)
    return [case for case in cases if case_key_text(case) not in done]


def case_key_text(case: Case) -> tuple[str, ...]:
    """Return the case's CASE_KEY values as text (how they compare with a loaded CSV's)."""
    key = case.key()
    return tuple(str(key[column]) for column in CASE_KEY)


def run_sweep(
    cases: list[Case],
    settings: Settings,
    out: Path,
    run_id: str,
    on_start: Callable[[Case], None] = lambda case: None,
    on_row: Callable[[Case, dict[str, object]], None] = lambda case, row: None,
    isolation: Isolation | None = Isolation(),
) -> list[dict[str, object]]:
    """Run every case, appending each row to `out` as soon as it is measured; return the rows.

    With `isolation` (the default) each case runs in a worker subprocess (bench.isolation);
    with None, or cases_per_worker 0, in this process, where a crash ends the sweep.
    An interrupt (Ctrl-C) kills the running worker and propagates; finished rows are on disk.
    """
    torch.set_num_threads(settings.threads)
    machine = env.fingerprint(settings.threads)
    settings = replace(settings, peaks=calibrate_peaks(cases, settings))
    rows = []
    in_process = isolation is None or isolation.cases_per_worker == 0
    with contextlib.nullcontext() if in_process else WorkerPool(isolation) as pool:
        for case in cases:
            on_start(case)
            if in_process:
                row = run_case(case, settings, run_id, machine)
            else:
                row = {**case_row(case, run_id, machine), **pool.measure(case, asdict(settings))}
            append_rows(out, [row])
            rows.append(row)
            on_row(case, row)
    return rows
