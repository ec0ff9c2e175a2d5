"""Slide attention as a careful engineer might tune it; `slide` (official) stays the reference point.

`slide-grouped`: keys and values shifted by ONE depthwise conv over their concatenation (one
kernel launch, one pass over the one-hot weights) instead of two.
`slide-channels-last`: the same two convs with inputs and weights in channels_last memory
format, which oneDNN/cuDNN prefer for depthwise convolution.
"""

from __future__ import annotations

import torch

from attention_variants.case import Case
from attention_variants.layout import from_channels_first, to_channels_first
from attention_variants.registry import Prepared, Variant, register
from attention_variants.slide import one_hot_kernels, shift, slide_attention


def grouped_slide_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: torch.Tensor, heads: int,
                            dilation: int = 1) -> torch.Tensor:
    """Return Slide attention with keys and values shifted by one grouped conv; q, k, v: (n, d, H, W)."""
    n, dim, height, width = k.shape
    kernel_size = kernel.shape[-1]
    taps = kernel_size * kernel_size
    shifted = shift(torch.cat([k, v], dim=1), kernel, None, kernel_size, dilation)  # (n, 2 * d * taps, H, W)
    keys, values = shifted.view(n // heads, heads, 2, dim, taps, height, width).unbind(2)
    query = (q * dim**-0.5).reshape(n // heads, heads, dim, 1, height, width)
    attn = (query * keys).sum(2, keepdim=True).softmax(dim=3)
    return (attn * values).sum(3).reshape(n, dim, height, width)


def build_grouped(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return the one-conv Slide closure (one-hot kernels for 2 * head_dim channels)."""
    batch, heads = q.shape[:2]
    kernel = one_hot_kernels(case.kernel_size, 2 * case.head_dim, q.dtype, q.device)
    return Prepared(
        fn=lambda qn, kn, vn: grouped_slide_attention(qn, kn, vn, kernel, case.heads, case.dilation),
        inputs=(to_channels_first(q), to_channels_first(k), to_channels_first(v)),
        to_canonical=lambda out: from_channels_first(out, batch, heads),
    )


def build_channels_last(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return the official Slide closure with channels_last inputs and kernel."""
    batch, heads = q.shape[:2]
    inputs = tuple(to_channels_first(t).contiguous(memory_format=torch.channels_last) for t in (q, k, v))
    kernel = one_hot_kernels(case.kernel_size, case.head_dim, q.dtype, q.device).contiguous(memory_format=torch.channels_last)
    return Prepared(
        fn=lambda qn, kn, vn: slide_attention(qn, kn, vn, kernel, None, case.heads, case.dilation),
        inputs=inputs,
        to_canonical=lambda out: from_channels_first(out.contiguous(), batch, heads),  # view needs the NCHW strides
    )


register(Variant("slide-grouped", "local-zero-pad", build_grouped, description="Slide, keys and values in one grouped conv",
                 dilates=True))
register(Variant("slide-channels-last", "local-zero-pad", build_channels_last, description="Slide, channels_last convs", dilates=True))
