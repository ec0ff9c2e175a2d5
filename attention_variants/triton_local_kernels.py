"""The Triton kernels of `triton-local` (attention_variants/triton_local.py has the design).

Imported only when a case runs them, so that importing the registry (every sweep, worker and
Callgrind count) does not import Triton; TRITON_INTERPRET is read at that first import.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634
TILE = (8, 8)  # query (and key) tile: 64 pixels, the M of each tl.dot
BLOCK_K = 64  # halo pixels per chunk: the N of each tl.dot
NUM_WARPS = 4
# float32 products. The forward must meet the harness's float32 bound (TF32 misses it by 100x): IEEE.
# The backward, on an H200: tf32x3 (three TF32 products, gradients within 2e-6) runs 11x faster than
# IEEE at head_dim 32, but needs more shared memory than there is at head_dim 128; IEEE there, with
# 8 warps (4x faster than 4 in the backward). Half-precision inputs ignore the setting.
FORWARD_PRECISION = "ieee"
BACKWARD_PRECISION = {64: ("tf32x3", NUM_WARPS), 128: ("ieee", 8)}  # up to head_dim (the variant's maximum) -> (precision, warps)
# Bfloat16 dots are upcast in the interpreter, whose numpy has no bfloat16; Triton reads the variable at import too.
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


@triton.jit
def _tile_pixels(tile, tiles_w, TILE_H: tl.constexpr, TILE_W: tl.constexpr):
    idx = tl.arange(0, TILE_H * TILE_W)
    return (tile // tiles_w) * TILE_H + idx // TILE_W, (tile % tiles_w) * TILE_W + idx % TILE_W


@triton.jit
def _halo_pixels(tile, tiles_w, start, TILE_H: tl.constexpr, TILE_W: tl.constexpr, KERNEL: tl.constexpr,
                 BLOCK: tl.constexpr):
    # Pixels past the halo's end lie more than k//2 rows below every tile pixel: the square mask drops them.
    idx = start + tl.arange(0, BLOCK)
    y = (tile // tiles_w) * TILE_H - KERNEL // 2 + idx // (TILE_W + KERNEL - 1)
    return y, (tile % tiles_w) * TILE_W - KERNEL // 2 + idx % (TILE_W + KERNEL - 1)


@triton.jit
def _inside(y, x, height, width):
    return (y >= 0) & (y < height) & (x >= 0) & (x < width)


@triton.jit
def _load(base, y, x, height, width, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    d = tl.arange(0, BLOCK_D)
    mask = _inside(y, x, height, width)[:, None] & (d < HEAD_DIM)[None, :]
    return tl.load(base + ((y * width + x) * HEAD_DIM)[:, None] + d[None, :], mask=mask, other=0.0)


@triton.jit
def _store(base, y, x, height, width, value, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    d = tl.arange(0, BLOCK_D)
    mask = _inside(y, x, height, width)[:, None] & (d < HEAD_DIM)[None, :]
    tl.store(base + ((y * width + x) * HEAD_DIM)[:, None] + d[None, :], value.to(base.dtype.element_ty), mask=mask)


@triton.jit
def _in_square(qy, qx, ky, kx, KERNEL: tl.constexpr):
    # rows index queries, columns keys
    return (tl.abs(ky[None, :] - qy[:, None]) <= KERNEL // 2) & (tl.abs(kx[None, :] - qx[:, None]) <= KERNEL // 2)


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    if UPCAST:  # triton 3.9's CPU interpreter multiplies bfloat16's raw bits; bf16 products are exact in fp32
        a, b = a.to(tl.float32), b.to(tl.float32)
    return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _forward_kernel(Q, K, V, O, LSE, height, width, tiles_w, scale_log2, KERNEL: tl.constexpr,
                    TILE_H: tl.constexpr, TILE_W: tl.constexpr, BLOCK_K: tl.constexpr, HEAD_DIM: tl.constexpr,
                    BLOCK_D: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    tile, image = tl.program_id(0), tl.program_id(1).to(tl.int64)
    offset = image * height * width * HEAD_DIM
    qy, qx = _tile_pixels(tile, tiles_w, TILE_H, TILE_W)
    q = _load(Q + offset, qy, qx, height, width, HEAD_DIM, BLOCK_D)
    row_max = tl.full([TILE_H * TILE_W], -1.0e30, tl.float32)  # finite: a chunk may miss a query's square
    row_sum = tl.zeros([TILE_H * TILE_W], tl.float32)
    acc = tl.zeros([TILE_H * TILE_W, BLOCK_D], tl.float32)
    for start in range(0, (TILE_H + KERNEL - 1) * (TILE_W + KERNEL - 1), BLOCK_K):
        ky, kx = _halo_pixels(tile, tiles_w, start, TILE_H, TILE_W, KERNEL, BLOCK_K)
        k = _load(K + offset, ky, kx, height, width, HEAD_DIM, BLOCK_D)
        v = _load(V + offset, ky, kx, height, width, HEAD_DIM, BLOCK_D)
        logits = _dot(q, tl.trans(k), PRECISION, UPCAST) * scale_log2
        logits = tl.where(_in_square(qy, qx, ky, kx, KERNEL), logits, float("-inf"))
        new_max = tl.maximum(row_max, tl.max(logits, 1))
        rescale = tl.exp2(row_max - new_max)
        p = tl.exp2(logits - new_max[:, None])
        row_sum = row_sum * rescale + tl.sum(p, 1)
        acc = acc * rescale[:, None] + _dot(p.to(v.dtype), v, PRECISION, UPCAST)
        row_max = new_max
    _store(O + offset, qy, qx, height, width, acc / row_sum[:, None], HEAD_DIM, BLOCK_D)
    inside = _inside(qy, qx, height, width)
    tl.store(LSE + image * height * width + qy * width + qx, row_max + tl.log2(row_sum), mask=inside)


@triton.jit
def _grad_query_kernel(Q, K, V, O, DO, LSE, DELTA, DQ, height, width, tiles_w, scale_log2, KERNEL: tl.constexpr,
                       TILE_H: tl.constexpr, TILE_W: tl.constexpr, BLOCK_K: tl.constexpr, HEAD_DIM: tl.constexpr,
                       BLOCK_D: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    tile, image = tl.program_id(0), tl.program_id(1).to(tl.int64)
    offset = image * height * width * HEAD_DIM
    qy, qx = _tile_pixels(tile, tiles_w, TILE_H, TILE_W)
    q = _load(Q + offset, qy, qx, height, width, HEAD_DIM, BLOCK_D)
    do = _load(DO + offset, qy, qx, height, width, HEAD_DIM, BLOCK_D)
    o = _load(O + offset, qy, qx, height, width, HEAD_DIM, BLOCK_D)
    delta = tl.sum(do.to(tl.float32) * o.to(tl.float32), 1)
    pixel = image * height * width + qy * width + qx
    inside = _inside(qy, qx, height, width)
    tl.store(DELTA + pixel, delta, mask=inside)
    lse = tl.load(LSE + pixel, mask=inside, other=0.0)
    dq = tl.zeros([TILE_H * TILE_W, BLOCK_D], tl.float32)
    for start in range(0, (TILE_H + KERNEL - 1) * (TILE_W + KERNEL - 1), BLOCK_K):
        ky, kx = _halo_pixels(tile, tiles_w, start, TILE_H, TILE_W, KERNEL, BLOCK_K)
        k = _load(K + offset, ky, kx, height, width, HEAD_DIM, BLOCK_D)
        v = _load(V + offset, ky, kx, height, width, HEAD_DIM, BLOCK_D)
        logits = _dot(q, tl.trans(k), PRECISION, UPCAST) * scale_log2
        p = tl.exp2(tl.where(_in_square(qy, qx, ky, kx, KERNEL), logits, float("-inf")) - lse[:, None])
        dp = _dot(do, tl.trans(v), PRECISION, UPCAST)
        ds = p * (dp - delta[:, None])
        dq += _dot(ds.to(k.dtype), k, PRECISION, UPCAST)
    _store(DQ + offset, qy, qx, height, width, dq * (scale_log2 / 1.4426950408889634), HEAD_DIM, BLOCK_D)


@triton.jit
def _grad_key_value_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, height, width, tiles_w, scale_log2,
                           KERNEL: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr,
                           BLOCK_K: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
                           PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    # Transposed roles: this tile's pixels are keys, the halo chunks are the queries that see them.
    tile, image = tl.program_id(0), tl.program_id(1).to(tl.int64)
    offset = image * height * width * HEAD_DIM
    ky, kx = _tile_pixels(tile, tiles_w, TILE_H, TILE_W)
    k = _load(K + offset, ky, kx, height, width, HEAD_DIM, BLOCK_D)
    v = _load(V + offset, ky, kx, height, width, HEAD_DIM, BLOCK_D)
    dk = tl.zeros([TILE_H * TILE_W, BLOCK_D], tl.float32)
    dv = tl.zeros([TILE_H * TILE_W, BLOCK_D], tl.float32)
    for start in range(0, (TILE_H + KERNEL - 1) * (TILE_W + KERNEL - 1), BLOCK_K):
        qy, qx = _halo_pixels(tile, tiles_w, start, TILE_H, TILE_W, KERNEL, BLOCK_K)
        q = _load(Q + offset, qy, qx, height, width, HEAD_DIM, BLOCK_D)
        do = _load(DO + offset, qy, qx, height, width, HEAD_DIM, BLOCK_D)
        inside = _inside(qy, qx, height, width)
        pixel = image * height * width + qy * width + qx
        lse = tl.load(LSE + pixel, mask=inside, other=0.0)
        delta = tl.load(DELTA + pixel, mask=inside, other=0.0)
        logits = _dot(k, tl.trans(q), PRECISION, UPCAST) * scale_log2
        seen = _in_square(ky, kx, qy, qx, KERNEL) & inside[None, :]  # no query outside the image
        p = tl.exp2(tl.where(seen, logits, float("-inf")) - lse[None, :])
        dv += _dot(p.to(do.dtype), do, PRECISION, UPCAST)
        dp = _dot(v, tl.trans(do), PRECISION, UPCAST)
        dk += _dot((p * (dp - delta[None, :])).to(q.dtype), q, PRECISION, UPCAST)
    _store(DK + offset, ky, kx, height, width, dk * (scale_log2 / 1.4426950408889634), HEAD_DIM, BLOCK_D)
    _store(DV + offset, ky, kx, height, width, dv, HEAD_DIM, BLOCK_D)


def _launch(kernel, tensors: list[torch.Tensor], kernel_size: int, precision: str, warps: int = NUM_WARPS) -> None:
    """Run `kernel` over every tile of every (batch*head) image of the channels-last tensors[0]."""
    images, height, width, dim = tensors[0].shape
    tile_h, tile_w = TILE
    tiles_w = triton.cdiv(width, tile_w)
    grid = (triton.cdiv(height, tile_h) * tiles_w, images)
    kernel[grid](*tensors, height, width, tiles_w, dim**-0.5 * LOG2E, KERNEL=kernel_size, TILE_H=tile_h, TILE_W=tile_w,
                 BLOCK_K=BLOCK_K, HEAD_DIM=dim, BLOCK_D=max(16, triton.next_power_of_2(dim)),
                 PRECISION=precision, UPCAST=INTERPRETED and tensors[0].dtype == torch.bfloat16, num_warps=warps)


def attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the output (like q) and the base-2 logsumexp (float32, per pixel) of channels-last q, k, v."""
    out = torch.empty_like(q)
    lse = torch.empty(q.shape[:3], dtype=torch.float32, device=q.device)
    _launch(_forward_kernel, [q, k, v, out, lse], kernel_size, FORWARD_PRECISION)
    return out, lse


def attention_backward(saved: tuple[torch.Tensor, ...], grad_out: torch.Tensor, kernel_size: int) -> tuple[torch.Tensor, ...]:
    """Return dq, dk, dv from the forward's saved (q, k, v, out, lse) and the output gradient."""
    q, k, v, out, lse = saved
    grad_out = grad_out.contiguous()
    delta = torch.empty_like(lse)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    precision, warps = next(config for dim, config in BACKWARD_PRECISION.items() if q.shape[-1] <= dim)
    if q.dtype != torch.float32:
        precision, warps = FORWARD_PRECISION, NUM_WARPS
    _launch(_grad_query_kernel, [q, k, v, out, grad_out, lse, delta, dq], kernel_size, precision, warps)
    _launch(_grad_key_value_kernel, [q, k, v, grad_out, lse, delta, dk, dv], kernel_size, precision, warps)
    return dq, dk, dv


class LocalAttention(torch.autograd.Function):
    """Zero-padded local attention of channels-last (batch*heads, H, W, head_dim) q, k, v, with its fused backward."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int) -> torch.Tensor:
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        out, lse = attention_forward(q, k, v, kernel_size)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.kernel_size = kernel_size
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        return (*attention_backward(ctx.saved_tensors, grad_out, ctx.kernel_size), None)
