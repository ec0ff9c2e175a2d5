"""`local-halo`: exact k x k zero-padded local attention by HaloNet-style blocking.

The image is cut into rows x cols query blocks; each block gathers its halo, the
(rows + k - 1) x (cols + k - 1) keys around it, and does one dense matmul against them with
a mask that keeps only each query's own k x k square. Dense work per query is
(rows + k - 1)(cols + k - 1) keys instead of k*k, but it runs as batched GEMMs. One-row
strips (rows = 1) waste least ((cols + k - 1) / k); blocks are processed in chunks of
batch*heads so the gathered halos stay in cache. Block shape and chunk were picked by
measurement (docs/performance.md).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from attention_variants.case import Case
from attention_variants.layout import from_channels_last, to_channels_last
from attention_variants.registry import Prepared, Variant, register

BLOCK = (2, 8)  # (rows, cols) of a query block: measured best of 1x8..8x8 at 56x56, k=7 (docs/performance.md)
CHUNK_BYTES = 512 << 10  # bytes of q per chunk of batch*heads rows


@functools.cache
def _outside_square(rows: int, cols: int, kernel_size: int) -> torch.Tensor:
    """Return the (rows*cols, halo) bias: 0 inside each query's k x k square, -inf outside."""
    def band(n: int) -> torch.Tensor:
        offset = torch.arange(n + kernel_size - 1)[None, :] - torch.arange(n)[:, None]
        return (offset >= 0) & (offset < kernel_size)

    inside = band(rows)[:, None, :, None] & band(cols)[None, :, None, :]
    return torch.zeros(inside.shape).masked_fill_(~inside, float("-inf")).reshape(rows * cols, -1)


def halo_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int, block: tuple[int, int]) -> torch.Tensor:
    """Return zero-padded local attention of channels-last q, k, v (n, H, W, head_dim)."""
    n, height, width, dim = q.shape
    rows, cols = block
    pad = kernel_size // 2
    row_blocks, col_blocks = -(-height // rows), -(-width // cols)
    extra_h, extra_w = row_blocks * rows - height, col_blocks * cols - width
    # Zero padding is the local-zero-pad rule; the extra rows/cols only feed discarded queries.
    query = F.pad(q * dim**-0.5, (0, 0, 0, extra_w, 0, extra_h))
    keys = F.pad(k, (0, 0, pad, pad + extra_w, pad, pad + extra_h))
    values = F.pad(v, (0, 0, pad, pad + extra_w, pad, pad + extra_h))
    halo_h, halo_w = rows + kernel_size - 1, cols + kernel_size - 1
    s = keys.stride()
    shape = (n, row_blocks, col_blocks, halo_h, halo_w, dim)
    strides = (s[0], rows * s[1], cols * s[2], s[1], s[2], s[3])
    blocks = n * row_blocks * col_blocks
    key_halo = keys.as_strided(shape, strides).reshape(blocks, halo_h * halo_w, dim)
    value_halo = values.as_strided(shape, strides).reshape(blocks, halo_h * halo_w, dim)
    query_blocks = query.view(n, row_blocks, rows, col_blocks, cols, dim).transpose(2, 3).reshape(blocks, rows * cols, dim)
    bias = _outside_square(rows, cols, kernel_size).to(q.device, q.dtype)
    # The mask rides in the GEMM's beta*C term: no separate pass over the logits.
    logits = torch.baddbmm(bias.expand(blocks, -1, -1), query_blocks, key_halo.transpose(1, 2))
    out = torch.bmm(logits.softmax(-1), value_halo)
    out = out.view(n, row_blocks, col_blocks, rows, cols, dim).transpose(2, 3).reshape(n, row_blocks * rows, col_blocks * cols, dim)
    return out[:, :height, :width]


def chunked(q, k, v, kernel_size: int, block: tuple[int, int], chunk: int) -> torch.Tensor:
    """Return halo_attention computed `chunk` rows of batch*heads at a time."""
    if chunk >= q.shape[0]:
        return halo_attention(q, k, v, kernel_size, block)
    parts = [halo_attention(q[i : i + chunk], k[i : i + chunk], v[i : i + chunk], kernel_size, block) for i in range(0, q.shape[0], chunk)]
    return torch.cat(parts)


def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return the blocked-halo closure over channels-last (batch*heads, H, W, head_dim) inputs."""
    batch, heads, height, width, dim = q.shape
    row_bytes = height * width * dim * q.element_size()
    chunk = batch * heads if case.traced else max(1, CHUNK_BYTES // row_bytes)
    return Prepared(
        fn=lambda qn, kn, vn: chunked(qn, kn, vn, case.kernel_size, BLOCK, chunk),
        inputs=(to_channels_last(q), to_channels_last(k), to_channels_last(v)),
        to_canonical=lambda out: from_channels_last(out, batch, heads),
        backend=f"blocks {BLOCK[0]}x{BLOCK[1]}, chunk {chunk}",
    )


register(Variant("local-halo", "local-zero-pad", build, description="HaloNet-style blocks: one masked GEMM per block halo"))
