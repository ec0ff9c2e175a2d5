"""`triton-local`: zero-padded k x k local attention as fused Triton kernels, forward and backward.

Design: one program per (query tile of TILE_H x TILE_W pixels, batch*head). The tile's halo,
(TILE_H+k-1) x (TILE_W+k-1) pixels, is walked in chunks of BLOCK_K pixels numbered row by row
(no padding of the halo's width to a power of two); each chunk is one tensor-core product
q @ k^T, masked to the k x k square of every query, folded into an online softmax with float32
max, sum and accumulator. Outside the image the loads give zeros, which are exactly the zero
keys and values of the local-zero-pad rule: they take part in the softmax without special
cases. The halo product computes (TILE_H+k-1)(TILE_W+k-1) logits per query for k*k useful ones
(4x at 8x8, k=7), which on tensor cores is still far cheaper than k*k scalar dot products; no
k*k shifted copy ever exists in global memory. The forward stores the base-2 logsumexp per
query. The backward is two kernels without atomics: per query tile, delta = rowsum(dO * O)
(stored) and dQ; per key tile, dK and dV gathered from the same-shaped halo of queries, with P
recomputed from q, k and the logsumexp (key i sees query j exactly when query j sees key i).
float32 products avoid plain TF32, which would miss the harness's float32 bound (FORWARD_PRECISION below).
The kernels live in triton_local_kernels.py, imported when a case first runs them: importing the
registry never imports Triton, and without it `supports` says why.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os

import torch

from attention_variants.case import Case
from attention_variants.layout import from_channels_last, to_channels_last
from attention_variants.registry import Prepared, Variant, register


def _triton_version() -> str | None:
    """Return the installed Triton's version without importing it (the kernels module imports it), or None."""
    try:
        return None if importlib.util.find_spec("triton") is None else importlib.metadata.version("triton")
    except (ImportError, ValueError, importlib.metadata.PackageNotFoundError):  # blocked, or a copy without metadata
        return None


TRITON_VERSION = _triton_version()
HAS_TRITON = TRITON_VERSION is not None

MAX_HEAD_DIM = 128
KERNEL_SIZES = range(3, 14, 2)
DTYPES = ("float32", "bfloat16", "float16")


def interpreted() -> bool:
    """Return whether Triton runs in its CPU interpreter (TRITON_INTERPRET=1, for tests)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def supports(case: Case) -> str | None:
    """Return why triton-local cannot run the case, or None."""
    if not HAS_TRITON:
        return "triton is not installed"
    if case.device != "cuda" and not (case.device == "cpu" and interpreted()):
        return "triton-local runs on CUDA (on the CPU only under TRITON_INTERPRET=1, for tests)"
    if case.device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    if case.dtype not in DTYPES:
        return f"triton-local supports {', '.join(DTYPES)}, not {case.dtype}"
    if case.head_dim > MAX_HEAD_DIM:
        return f"triton-local supports head_dim up to {MAX_HEAD_DIM}, not {case.head_dim}"
    if case.kernel_size not in KERNEL_SIZES:
        return f"triton-local supports odd kernel sizes 3..13, not {case.kernel_size}"
    if case.traced:
        return f"triton-local is a hand-written fused kernel: the {case.runtime} runtime has nothing to add"
    return None


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Return zero-padded k x k local attention of channels-last (batch*heads, H, W, head_dim) q, k, v."""
    from attention_variants.triton_local_kernels import LocalAttention

    return LocalAttention.apply(q, k, v, kernel_size)


def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return the fused Triton closure over channels-last (batch*heads, H, W, head_dim) inputs."""
    from attention_variants.triton_local_kernels import BLOCK_K, TILE

    batch, heads = q.shape[:2]
    return Prepared(
        fn=lambda qn, kn, vn: local_attention(qn, kn, vn, case.kernel_size),
        inputs=(to_channels_last(q), to_channels_last(k), to_channels_last(v)),
        to_canonical=lambda out: from_channels_last(out, batch, heads),
        backend=f"triton {TRITON_VERSION or '-'}, tile {TILE[0]}x{TILE[1]}, halo chunk {BLOCK_K}",
    )


register(Variant("triton-local", "local-zero-pad", build, supports,
                 description="fused Triton kernels over each tile's key halo, online softmax; fused backward"))
