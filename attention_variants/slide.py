"""Slide attention (Slide-Transformer, CVPR 2023), in the official formulation.

Keys and values are shifted by a depthwise Conv2d whose k*k output channels per input
channel carry fixed one-hot kernels (zero padding), as in class SlideAttention of
LeapLabTHU/Slide-Transformer. `slide-deformed` adds the learnable "deformed shifting"
depthwise kernel, benchmarked in its merged inference form (one conv with kernel
one-hot + learned): the merge is exact because convolution is linear in its kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attention_variants.case import Case
from attention_variants.layout import from_channels_first, to_channels_first
from attention_variants.registry import Prepared, Variant, register


def one_hot_kernels(kernel_size: int, head_dim: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """Return the fixed shift kernels, shape (head_dim * k*k, 1, k, k), as dep_conv holds them."""
    taps = kernel_size * kernel_size
    kernel = torch.eye(taps, dtype=dtype, device=device).view(taps, 1, kernel_size, kernel_size)
    return kernel.repeat(head_dim, 1, 1, 1)


def deformed_kernels(kernel_size: int, head_dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a learned-looking (weight, bias) for dep_conv1, seeded: nn.Conv2d's default init range."""
    generator = torch.Generator().manual_seed(seed)
    taps = kernel_size * kernel_size
    bound = 1.0 / kernel_size  # 1 / sqrt(fan_in) with fan_in = k*k
    weight = (torch.rand(head_dim * taps, 1, kernel_size, kernel_size, generator=generator) * 2 - 1) * bound
    bias = (torch.rand(head_dim * taps, generator=generator) * 2 - 1) * bound
    return weight, bias


def shift(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Return the k*k shifted copies of x (batch*heads, head_dim, H, W) by one depthwise conv (dilated by d)."""
    return F.conv2d(x, kernel, bias, padding=dilation * (kernel_size // 2), dilation=dilation, groups=x.shape[1])


def slide_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, heads: int,
    dilation: int = 1,
) -> torch.Tensor:
    """Return the official SlideAttention core; q, k, v: (batch*heads, head_dim, H, W)."""
    n, dim, height, width = k.shape
    kernel_size = kernel.shape[-1]
    taps = kernel_size * kernel_size
    query = (q * dim**-0.5).reshape(n // heads, heads, dim, 1, height, width)
    keys = shift(k, kernel, bias, kernel_size, dilation).reshape(n // heads, heads, dim, taps, height, width)
    values = shift(v, kernel, bias, kernel_size, dilation).reshape(n // heads, heads, dim, taps, height, width)
    attn = (query * keys).sum(2, keepdim=True).softmax(dim=3)
    return (attn * values).sum(3).reshape(n, dim, height, width)


def build_slide(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return the official Slide closure (one-hot kernels, no bias)."""
    batch, heads = q.shape[:2]
    kernel = one_hot_kernels(case.kernel_size, case.head_dim, q.dtype, q.device)
    return Prepared(
        fn=lambda qn, kn, vn: slide_attention(qn, kn, vn, kernel, None, case.heads, case.dilation),
        inputs=(to_channels_first(q), to_channels_first(k), to_channels_first(v)),
        to_canonical=lambda out: from_channels_first(out, batch, heads),
    )


def build_slide_deformed(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return Slide with deformed shifting, merged: one conv with kernel one-hot + learned."""
    batch, heads = q.shape[:2]
    weight, bias = deformed_kernels(case.kernel_size, case.head_dim)
    one_hot = one_hot_kernels(case.kernel_size, case.head_dim, torch.float64, "cpu")
    merged = (one_hot + weight.double()).to(q.device, q.dtype)  # merge in float64, then cast once
    merged_bias = bias.to(q.device, q.dtype)
    taps = case.kernel_size**2
    return Prepared(
        fn=lambda qn, kn, vn: slide_attention(qn, kn, vn, merged, merged_bias, case.heads, case.dilation),
        inputs=(to_channels_first(q), to_channels_first(k), to_channels_first(v)),
        to_canonical=lambda out: from_channels_first(out, batch, heads),
        oracle_kwargs={
            "deform_weight": weight.view(case.head_dim, taps, taps),
            "deform_bias": bias.view(case.head_dim, taps),
        },
    )


register(Variant("slide", "local-zero-pad", build_slide, description="official: depthwise conv, one-hot kernels", dilates=True))
register(
    Variant(
        "slide-deformed",
        "local-deformed",
        build_slide_deformed,
        description="one-hot + learned depthwise kernel, merged (inference form)",
        dilates=True,
    )
)
