"""Im2Col local attention: F.unfold gathers every k x k neighbourhood (zero padded)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attention_variants.case import Case
from attention_variants.layout import from_channels_first, to_channels_first
from attention_variants.registry import Prepared, Variant, register


def _im2col_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    # q, k, v: (batch*heads, head_dim, height, width)
    n, dim, height, width = q.shape
    pad = dilation * (kernel_size // 2)  # keeps the output height x width for any dilation
    unfold = lambda x: F.unfold(x, kernel_size, dilation=dilation, padding=pad)  # noqa: E731
    keys = unfold(k).view(n, dim, kernel_size * kernel_size, height * width)
    values = unfold(v).view(n, dim, kernel_size * kernel_size, height * width)
    query = q.reshape(n, dim, 1, height * width) * dim**-0.5
    attn = (query * keys).sum(dim=1, keepdim=True).softmax(dim=2)  # (n, 1, k*k, height*width)
    return (attn * values).sum(dim=2).view(n, dim, height, width)


def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return the Im2Col closure over channels-first (batch*heads, head_dim, H, W) inputs."""
    batch, heads = q.shape[:2]
    return Prepared(
        fn=lambda qn, kn, vn: _im2col_attention(qn, kn, vn, case.kernel_size, case.dilation),
        inputs=(to_channels_first(q), to_channels_first(k), to_channels_first(v)),
        to_canonical=lambda out: from_channels_first(out, batch, heads),
    )


register(Variant("im2col", "local-zero-pad", build, description="F.unfold neighbourhoods, softmax over k*k", dilates=True))
