"""`local-fused`: exact k x k zero-padded local attention by an online softmax over the offsets.

The loop visits the k*k offsets one at a time with a running max, running sum and running
weighted value (the FlashAttention recurrence), so the k*k shifted copies of the keys and
values that Im2Col and Slide materialise never exist. Eagerly, the batch*heads axis is cut
into chunks whose working set stays in cache; under torch.compile the whole loop is one
graph that inductor fuses, so no chunking is applied there. Half-precision inputs are upcast
one offset slice at a time and the running max, sum and accumulator stay float32 (rounding
them to bf16/fp16 on every step made the error 3-10x Im2Col's); the result is cast back once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attention_variants.case import Case
from attention_variants.layout import from_channels_first, to_channels_first
from attention_variants.registry import Prepared, Variant, register

# Bytes of one chunk's q (plus the same again for acc and temporaries) that fit the cache:
# measured on a 2-core EPYC (1 MiB L2 per core), see docs/performance.md.
CHUNK_BYTES = 1600 << 10


def online_local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Return zero-padded (dilated) local attention of channels-first q, k, v (n, head_dim, H, W)."""
    n, dim, height, width = q.shape
    pad = dilation * (kernel_size // 2)
    # Rounding the running sums to half precision at each of the k*k steps compounds: accumulate in float32 at least.
    accumulate = torch.promote_types(q.dtype, torch.float32)
    query = q.to(accumulate) * dim**-0.5
    keys = F.pad(k, (pad, pad, pad, pad))  # zero keys/values outside: the local-zero-pad rule
    values = F.pad(v, (pad, pad, pad, pad))
    running_max = running_sum = acc = None
    for di in range(0, pad * 2 + 1, dilation):
        for dj in range(0, pad * 2 + 1, dilation):
            key = keys[:, :, di : di + height, dj : dj + width].to(accumulate)  # upcast one offset at a time
            value = values[:, :, di : di + height, dj : dj + width].to(accumulate)
            logit = (query * key).sum(1, keepdim=True)
            if running_max is None:
                running_max, running_sum, acc = logit, torch.ones_like(logit), value.clone()
                continue
            new_max = torch.maximum(running_max, logit)
            rescale = torch.exp(running_max - new_max)  # shrinks what was summed so far
            weight = torch.exp(logit - new_max)
            running_sum = running_sum * rescale + weight
            acc = acc * rescale + weight * value
            running_max = new_max
    return (acc / running_sum).to(q.dtype)


def chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int, chunk: int, dilation: int = 1) -> torch.Tensor:
    """Return online_local_attention computed `chunk` rows of batch*heads at a time."""
    if chunk >= q.shape[0]:
        return online_local_attention(q, k, v, kernel_size, dilation)
    parts = [online_local_attention(q[i : i + chunk], k[i : i + chunk], v[i : i + chunk], kernel_size, dilation)
             for i in range(0, q.shape[0], chunk)]
    return torch.cat(parts)


def chunk_rows(case: Case) -> int:
    """Return how many (batch*heads) rows one eager chunk holds so that it stays in cache."""
    # Sized by the accumulator's element (float32 for half inputs): acc and temporaries dominate.
    accumulate = torch.promote_types(case.torch_dtype, torch.float32)
    row_bytes = case.head_dim * case.height * case.width * torch.empty((), dtype=accumulate).element_size()
    return max(1, CHUNK_BYTES // row_bytes)


def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return the online-softmax closure over channels-first (batch*heads, head_dim, H, W) inputs."""
    batch, heads = q.shape[:2]
    chunk = batch * heads if case.traced else chunk_rows(case)  # a traced graph fuses the whole loop itself
    return Prepared(
        fn=lambda qn, kn, vn: chunked(qn, kn, vn, case.kernel_size, chunk, case.dilation),
        inputs=(to_channels_first(q), to_channels_first(k), to_channels_first(v)),
        to_canonical=lambda out: from_channels_first(out, batch, heads),
        backend=f"online softmax, chunk {chunk}",
    )


register(Variant("local-fused", "local-zero-pad", build, description="online softmax over the k*k offsets, no k*k copies",
                 dilates=True))
