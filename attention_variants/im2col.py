"""Im2Col local attention: F.unfold gathers every k x k neighbourhood (zero padded)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attention_variants.case import Case
from attention_variants.registry import Prepared, Variant, register


def _im2col_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int) -> torch.Tensor:
    # q, k, v: (batch*heads, head_dim, height, width)
    n, dim, height, width = q.shape
    pad = kernel_size // 2
    keys = F.unfold(k, kernel_size, padding=pad).view(n, dim, kernel_size * kernel_size, height * width)
    values = F.unfold(v, kernel_size, padding=pad).view(n, dim, kernel_size * kernel_size, height * width)
    query = q.reshape(n, dim, 1, height * width) * dim**-0.5
    attn = (query * keys).sum(dim=1, keepdim=True).softmax(dim=2)  # (n, 1, k*k, height*width)
    return (attn * values).sum(dim=2).view(n, dim, height, width)


def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return the Im2Col closure over channels-first (batch*heads, head_dim, H, W) inputs."""
    b, h, x, y, d = q.shape
    native = lambda t: t.permute(0, 1, 4, 2, 3).reshape(b * h, d, x, y).contiguous()  # noqa: E731
    return Prepared(
        fn=lambda qn, kn, vn: _im2col_attention(qn, kn, vn, case.kernel_size),
        inputs=(native(q), native(k), native(v)),
        to_canonical=lambda out: out.view(b, h, d, x, y).permute(0, 1, 3, 4, 2),
    )


register(Variant("im2col", "local-zero-pad", build, description="F.unfold neighbourhoods, softmax over k*k"))
