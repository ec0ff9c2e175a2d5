"""The roofline: the device's peak FLOP/s and memory bandwidth, measured by calibration kernels.

Why calibrate instead of using a datasheet: on a shared or throttled machine the datasheet
peak is unreachable, and the question is how far each formulation is from what *this*
device does *now*. A large matmul stands for peak compute (the best a GEMM library gets),
a large copy (well past the last-level cache) for memory bandwidth. Both run once per
process, device, dtype and thread count (functools.cache) and are timed with
torch.utils.benchmark like the cases. With per-case worker processes the sweep calibrates
once (`calibrate`) and hands the numbers to the workers (see docs/performance.md); the sweep
command keeps them per machine and thread count (`cached_calibration`, `--recalibrate`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils import benchmark

from attention_variants.case import DTYPES, Case
from bench.measure.machine import device_unavailable, fingerprint

MATMUL_SIZE = {"cpu": 2048, "cuda": 8192}  # square side of the calibration GEMM
COPY_BYTES = {"cpu": 256 << 20, "cuda": 2 << 30}  # well past L3 / L2, so it measures DRAM
MIN_RUN_S = 0.3


@dataclass(frozen=True)
class Peaks:
    """What the calibration kernels reached: GFLOP/s of the GEMM and GB/s of the copy."""

    gflop_per_s: float
    gb_per_s: float


def _median_s(stmt_globals: dict[str, object], threads: int) -> float:
    timer = benchmark.Timer(stmt="fn()", globals=stmt_globals, num_threads=threads)
    stmt_globals["fn"]()  # warm-up: allocator, library dispatch, CUDA context
    return timer.blocked_autorange(min_run_time=MIN_RUN_S).median


def _kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


@functools.cache
def matmul_gflop_per_s(device: str, dtype: torch.dtype, threads: int) -> float:
    """Return the GFLOP/s of a large square matmul in `dtype` on `device`."""
    size = MATMUL_SIZE[_kind(device)]
    if dtype not in (torch.float32, torch.float64) and device == "cpu":
        size //= 2  # CPUs without native half/bf16 GEMM are slow; keep calibration short
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    seconds = _median_s({"fn": lambda: _synced(device, torch.mm, a, b)}, threads)
    return 2 * size**3 / seconds / 1e9


@functools.cache
def copy_gb_per_s(device: str, threads: int) -> float:
    """Return the GB/s of a large device-to-device copy (bytes read plus bytes written)."""
    count = COPY_BYTES[_kind(device)] // 4
    src = torch.randn(count, device=device)
    dst = torch.empty_like(src)
    seconds = _median_s({"fn": lambda: _synced(device, dst.copy_, src)}, threads)
    return 2 * count * 4 / seconds / 1e9


def _synced(device: str, fn, *args) -> None:
    fn(*args)
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peaks(device: str, dtype: torch.dtype, threads: int) -> Peaks:
    """Return the calibrated peaks of `device` for `dtype` at `threads` (cached per process)."""
    return Peaks(matmul_gflop_per_s(device, dtype, threads), copy_gb_per_s(device, threads))


def calibrate(cases: list[Case], threads: int, known: dict[str, list[float]]) -> dict[str, list[float]]:
    """Return `known` plus the peaks of every usable (device, dtype) of the cases not in it, measured now."""
    found = dict(known)
    for device, dtype in dict.fromkeys((case.device, case.dtype) for case in cases):
        if f"{device}/{dtype}" not in found and device_unavailable(device) is None:
            measured = peaks(device, DTYPES[dtype], threads)
            found[f"{device}/{dtype}"] = [measured.gflop_per_s, measured.gb_per_s]
    return found


def cached_calibration(cases: list[Case], threads: int, known: dict[str, list[float]],
                       recalibrate: bool = False) -> dict[str, list[float]]:
    """Return `known` plus the peaks of the cases' (device, dtype): this machine's cached ones, measured and stored
    when missing (or all again with recalibrate).

    Why a cache: the calibration kernels take seconds at every start, for numbers that only change
    with the machine. The file is keyed by the machine's fingerprint (host, CPU, GPU, torch), the CPU's
    family, model and flags (local_tiled.machine_id: a VM moved to another host keeps its name and brand string) and
    the thread count, so another machine, torch or thread count measures anew.
    """
    path = _cache_file(threads)
    stored = {} if recalibrate else _read_peaks(path)
    found = calibrate(cases, threads, {**stored, **known})
    measured = {key: value for key, value in found.items() if key not in stored and key not in known}
    if measured:
        _write_peaks(path, {**stored, **measured})
    return found


def _cache_file(threads: int) -> Path:
    from attention_variants.local_tiled import machine_id, private_cache  # the project's one reader of each

    machine = fingerprint(threads)
    key = {name: machine[name] for name in ("host", "cpu", "gpu", "torch_version", "threads")} | {"cpu_identity": machine_id()}
    key = json.dumps({**key, "kernels": [MATMUL_SIZE, COPY_BYTES, MIN_RUN_S]}, sort_keys=True)  # other kernels: other peaks
    return private_cache() / f"roofline-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _read_peaks(path: Path) -> dict[str, list[float]]:
    """Return the cached peaks, or none when the file is missing or not what this function writes."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    good = lambda v: isinstance(v, list) and len(v) == 2 and all(isinstance(x, float) and 0 < x < math.inf for x in v)  # noqa: E731
    return {key: value for key, value in stored.items() if good(value)} if isinstance(stored, dict) else {}


def _write_peaks(path: Path, peaks: dict[str, list[float]]) -> None:
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(peaks))
    os.replace(temporary, path)  # a reader sees the old file or the new one, never half of one


def analytic_gflop(case: Case) -> float:
    """Return the useful GFLOP of the case: QK^T and AV over the k*k keys each query sees.

    2 FLOP per multiply-add, 2 matmul-like products, softmax ignored; backward counts as
    twice the forward (gradients for q, k, v), so forward_backward is 3x.
    """
    # k*k keys per query (a window of w = k has as many as the k x k square), 2 products, 2 FLOP each
    forward = 4 * case.neighbour_elements
    return forward * (3 if case.needs_grad else 1) / 1e9


def bytes_moved(case: Case) -> float:
    """Return the compulsory bytes of the case: q, k, v read and the output written once.

    This is what an ideal implementation must move (the same for every variant, like the
    FLOP count); a variant that materialises k*k copies moves more and shows it as a lower
    achieved fraction. forward_backward moves 3x (q, k, v, out, dout read; dq, dk, dv written).
    """
    tensor = case.batch * case.heads * case.height * case.width * case.head_dim  # a base revision's Case (A/B gate) has no input_elements
    forward = 4 * tensor * torch.empty((), dtype=case.torch_dtype).element_size()
    return float(forward * (3 if case.needs_grad else 1))


def roofline_columns(gflop: float, case: Case, median_ms: float, found: Peaks) -> dict[str, object]:
    """Return the roofline columns of one measured case."""
    moved = bytes_moved(case)
    intensity = gflop * 1e9 / moved
    memory_gflop_per_s = intensity * found.gb_per_s  # what bandwidth allows at this intensity
    attainable = min(found.gflop_per_s, memory_gflop_per_s)
    achieved = gflop / (median_ms / 1e3)
    return {
        "peak_gflop_per_s": found.gflop_per_s,
        "peak_gb_per_s": found.gb_per_s,
        "bytes_moved": moved,
        "arithmetic_intensity": intensity,
        "roofline_fraction": achieved / attainable,
        "bound": "compute" if found.gflop_per_s <= memory_gflop_per_s else "memory",
    }
