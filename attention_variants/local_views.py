"""`local-views`: exact k x k zero-padded local attention written for torch.compile.

The k x k neighbourhoods are `unfold` views of the zero-padded keys and values: strided
windows, not copies. Compiled, the query-key product is a broadcast multiply and sum over
those views, which inductor lowers to one loop nest that reads each neighbour straight from
the padded tensor (no k*k copies, no wasted FLOPs), then a fused softmax, then a second loop
nest for the weighted sum of values. Eagerly the same broadcast would allocate the full
(pixels, head_dim, k, k) product, so eager calls contract the views with einsum instead
(which copies the windows, Im2Col-like): this variant is meant to be compiled. The harness's
compiled-vs-eager drift therefore compares the two forms with each other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attention_variants.case import Case
from attention_variants.layout import from_channels_last, to_channels_last
from attention_variants.registry import Prepared, Variant, register


def windows(padded: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Return the k x k windows of channels-last padded (n, H+k-1, W+k-1, D) as a (n, H, W, D, k, k) view."""
    return padded.unfold(1, kernel_size, 1).unfold(2, kernel_size, 1)


def view_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Return zero-padded local attention of channels-last q, k, v (n, H, W, head_dim)."""
    fused = torch.compiler.is_compiling()  # broadcast form for inductor, einsum when eager
    pad = kernel_size // 2
    padded_k, padded_v = (F.pad(t, (0, 0, pad, pad, pad, pad)) for t in (k, v))
    keys, values = windows(padded_k, kernel_size), windows(padded_v, kernel_size)
    query = q * q.shape[-1] ** -0.5
    if fused:
        logits = (query[..., None, None] * keys).sum(3)  # (n, H, W, k, k)
    else:
        logits = torch.einsum("nhwd,nhwdij->nhwij", query, keys)
    weights = logits.flatten(-2).softmax(-1).view_as(logits)
    if fused:
        return (weights[:, :, :, None] * values).sum((-2, -1))
    return torch.einsum("nhwij,nhwdij->nhwd", weights, values)


def supports(case: Case) -> str | None:
    """Return why the case cannot run: inductor's CPU backward of these windows is unsafe."""
    if case.runtime == "inductor" and case.needs_grad and case.device == "cpu":
        # torch 2.13: with 2+ threads the generated backward corrupts the heap (double free)
        # and can return wrong gradients; one thread is correct. Seen and kept out here.
        return "torch.compile backward of unfold windows races on CPU with 2+ threads (heap corruption)"
    return None


def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return the strided-view closure over channels-last (batch*heads, H, W, head_dim) inputs."""
    batch, heads = q.shape[:2]
    return Prepared(
        fn=lambda qn, kn, vn: view_attention(qn, kn, vn, case.kernel_size),
        inputs=(to_channels_last(q), to_channels_last(k), to_channels_last(v)),
        to_canonical=lambda out: from_channels_last(out, batch, heads),
        backend="broadcast over unfold views (traced)" if case.traced else "einsum over unfold views (eager)",
    )


register(Variant("local-views", "local-zero-pad", build, supports, description="unfold views, fused by torch.compile into loop nests"))
