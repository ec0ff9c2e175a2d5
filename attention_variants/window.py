"""Swin window attention: non-overlapping w x w windows (w = kernel_size), W-MSA and SW-MSA.

Same number of keys per query as k x k local attention, so the speed comparison is fair;
outputs differ (a window is not centred on its query). Follows Swin's window_partition,
cyclic roll and -100 region mask, and its rule that an image not larger than the window gets
no shift.
"""

from __future__ import annotations

import torch

from attention_variants.case import Case
from attention_variants.layout import from_heads_last, to_heads_last
from attention_variants.registry import Prepared, Variant, register


def partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """Return (batch*windows, heads, w*w, head_dim) from (batch, H, W, heads, head_dim)."""
    b, height, width, heads, dim = x.shape
    x = x.view(b, height // w, w, width // w, w, heads, dim).permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(-1, heads, w * w, dim)


def unpartition(windows: torch.Tensor, w: int, b: int, height: int, width: int) -> torch.Tensor:
    """Inverse of `partition`."""
    heads, dim = windows.shape[1], windows.shape[3]
    x = windows.view(b, height // w, width // w, heads, w, w, dim).permute(0, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, height, width, heads, dim)


def shifted_window_mask(height: int, width: int, w: int, shift: int, dtype, device) -> torch.Tensor:
    """Return Swin's additive mask (windows, w*w, w*w): -100 between regions that the roll glued."""
    labels = torch.zeros(1, height, width, 1, 1, device=device)
    cuts = (slice(0, -w), slice(-w, -shift), slice(-shift, None))
    for region, (rows, cols) in enumerate((r, c) for r in cuts for c in cuts):
        labels[:, rows, cols] = region
    label_windows = partition(labels, w).view(-1, w * w)
    differ = label_windows[:, None, :] != label_windows[:, :, None]
    return torch.zeros(differ.shape, dtype=dtype, device=device).masked_fill(differ, -100.0)


def window_attention(q, k, v, w: int, shift: int, mask: torch.Tensor | None, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Return Swin (shifted) window attention over (batch, H, W, heads, head_dim) tensors.

    bias: Swin's relative position bias as (heads, w*w, w*w), added to every window's logits
    (a model passes it; the op benchmark does not).
    """
    b, height, width, heads, dim = q.shape
    if shift:
        q, k, v = (torch.roll(t, shifts=(-shift, -shift), dims=(1, 2)) for t in (q, k, v))
    qw, kw, vw = partition(q, w), partition(k, w), partition(v, w)
    attn = (qw * dim**-0.5) @ kw.transpose(-2, -1)
    if bias is not None:
        attn = attn + bias
    if mask is not None:
        windows = mask.shape[0]
        attn = (attn.view(-1, windows, heads, w * w, w * w) + mask[None, :, None]).view(-1, heads, w * w, w * w)
    out = unpartition(attn.softmax(dim=-1) @ vw, w, b, height, width)
    return torch.roll(out, shifts=(shift, shift), dims=(1, 2)) if shift else out


def swin_shift(height: int, width: int, w: int) -> int:
    """Return the shift official Swin (and timm) uses for SW-MSA: w // 2, or 0 when min(H, W) <= w."""
    # Swin also shrinks the window to min(H, W) then; `supports` (w divides H and W) makes that a no-op.
    return 0 if min(height, width) <= w else w // 2


def supports(case: Case) -> str | None:
    """Return why the window does not tile the image, if it does not."""
    w = case.kernel_size
    if case.height % w or case.width % w:
        return f"window {w} does not divide {case.height}x{case.width}"
    return None


def _builder(shifted: bool):
    def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
        w = case.kernel_size
        shift = swin_shift(case.height, case.width, w) if shifted else 0
        mask = shifted_window_mask(case.height, case.width, w, shift, q.dtype, q.device) if shift else None
        return Prepared(
            fn=lambda qn, kn, vn, bias=None: window_attention(qn, kn, vn, w, shift, mask, bias),
            inputs=(to_heads_last(q), to_heads_last(k), to_heads_last(v)),
            to_canonical=from_heads_last,
        )

    return build


register(Variant("window", "window", _builder(False), supports, "Swin W-MSA, window = kernel size"))
register(Variant("window-shifted", "window-shifted", _builder(True), supports, "Swin SW-MSA: roll + mask"))
