"""FlexAttention (torch.nn.attention.flex_attention) with a block mask for two local families.

`flex-neighborhood` uses NATTEN's border rule (the k x k window clamped inside the image),
`flex-local-masked` the k x k square centred on the query with outside pixels excluded.
Pixels are flattened row-major into one sequence; the block mask (built outside the timer)
lets the compiled kernel skip key blocks that no query of a query block can see. Eagerly,
FlexAttention evaluates the mask densely (N x N scores): correct but slow; compiled it runs
inductor's block-sparse kernel (C++ on CPU, Triton on CUDA).
"""

from __future__ import annotations

import warnings

import torch

from attention_variants.case import Case
from attention_variants.registry import Prepared, Variant, register

try:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    HAS_FLEX = True
except ImportError:  # torch < 2.5
    HAS_FLEX = False

EAGER_MAX_TOKENS = 16 * 16  # eager flex materialises N x N scores: keep the default sweep fast


def _neighborhood_mask(height: int, width: int, kernel_size: int):
    radius = kernel_size // 2

    def mask_mod(b, h, q_idx, kv_idx):
        qi, qj, ki, kj = q_idx // width, q_idx % width, kv_idx // width, kv_idx % width
        row_start = (qi - radius).clamp(0, height - kernel_size)
        col_start = (qj - radius).clamp(0, width - kernel_size)
        return (ki >= row_start) & (ki < row_start + kernel_size) & (kj >= col_start) & (kj < col_start + kernel_size)

    return mask_mod


def _local_masked_mask(height: int, width: int, kernel_size: int):
    radius = kernel_size // 2

    def mask_mod(b, h, q_idx, kv_idx):
        qi, qj, ki, kj = q_idx // width, q_idx % width, kv_idx // width, kv_idx % width
        return ((ki - qi).abs() <= radius) & ((kj - qj).abs() <= radius)

    return mask_mod


def supports(case: Case) -> str | None:
    """Return why FlexAttention cannot run the case, if it cannot."""
    if not HAS_FLEX:
        return "torch.nn.attention.flex_attention needs torch >= 2.5"
    if case.kernel_size > min(case.height, case.width):
        return f"kernel {case.kernel_size} larger than the {case.height}x{case.width} image"
    if case.device == "cpu" and case.needs_grad:
        return "FlexAttention has no backward on CPU"
    if case.runtime == "eager" and case.height * case.width > EAGER_MAX_TOKENS:  # onnxruntime: the exporter decides
        return f"eager FlexAttention is dense (N x N); above {EAGER_MAX_TOKENS} tokens run it with --runtimes inductor or export"
    return None


def _builder(make_mask):
    def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
        """Return flex_attention over (batch, heads, H*W, head_dim) with the family's block mask."""
        b, h, x, y, d = q.shape
        native = lambda t: t.reshape(b, h, x * y, d)  # noqa: E731  (a view: no copy needed)
        mask = create_block_mask(make_mask(x, y, case.kernel_size), None, None, x * y, x * y, device=q.device)

        def fn(query, key, value):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # eagerly, flex warns on every call that it is unfused
                return flex_attention(query, key, value, block_mask=mask)

        return Prepared(
            fn=fn,
            inputs=(native(q), native(k), native(v)),
            to_canonical=lambda out: out.view(b, h, x, y, d),
            backend=f"flex_attention, block {mask.BLOCK_SIZE[0]}x{mask.BLOCK_SIZE[1]}",
        )

    return build


register(Variant("flex-neighborhood", "neighborhood", _builder(_neighborhood_mask), supports,
                 "FlexAttention, NATTEN's border rule as a block mask"))
register(Variant("flex-local-masked", "local-masked", _builder(_local_masked_mask), supports,
                 "FlexAttention, k x k square mask (outside excluded)"))
