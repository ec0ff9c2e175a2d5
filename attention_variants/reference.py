"""Float64 oracles, one per semantics family.

Written from the definitions (explicit index gathers and dense masks), never by calling a
variant's code, so that a variant and its oracle cannot share a bug. All take canonical
tensors (batch, heads, height, width, head_dim) and return the same shape.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor


def _softmax_weighted_sum(q: Tensor, keys: Tensor, values: Tensor, valid: Tensor | None) -> Tensor:
    """Attention of q (..., D) over stacked neighbours keys/values (..., S, D)."""
    logits = torch.einsum("...d,...sd->...s", q, keys) * q.shape[-1] ** -0.5
    if valid is not None:
        logits = logits.masked_fill(~valid, float("-inf"))
    return torch.einsum("...s,...sd->...d", logits.softmax(dim=-1), values)


def _offsets(kernel_size: int, dilation: int = 1) -> list[tuple[int, int]]:
    r = kernel_size // 2
    return [(dilation * di, dilation * dj) for di in range(-r, r + 1) for dj in range(-r, r + 1)]


def _shifted(x: Tensor, di: int, dj: int) -> tuple[Tensor, Tensor]:
    """Return x[i + di, j + dj] for every (i, j), zero outside, and the inside mask."""
    height, width = x.shape[2], x.shape[3]
    rows = torch.arange(height) + di
    cols = torch.arange(width) + dj
    inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
    gathered = x[:, :, rows.clamp(0, height - 1)][:, :, :, cols.clamp(0, width - 1)]
    return gathered * inside[None, None, :, :, None], inside


def _local(q: Tensor, k: Tensor, v: Tensor, kernel_size: int, masked: bool, dilation: int) -> Tensor:
    keys, values, valid = [], [], []
    for di, dj in _offsets(kernel_size, dilation):
        key, inside = _shifted(k, di, dj)
        value, _ = _shifted(v, di, dj)
        keys.append(key)
        values.append(value)
        valid.append(inside.expand(q.shape[:4]))
    mask = torch.stack(valid, dim=-1) if masked else None
    return _softmax_weighted_sum(q, torch.stack(keys, dim=-2), torch.stack(values, dim=-2), mask)


def local_zero_pad(q: Tensor, k: Tensor, v: Tensor, kernel_size: int, dilation: int = 1) -> Tensor:
    """Return k x k local attention where outside pixels are zero keys/values in the softmax.

    With dilation d the query (i, j) sees (i + d*a, j + d*b) for a, b in -(k//2)..k//2.
    """
    return _local(q, k, v, kernel_size, masked=False, dilation=dilation)


def local_masked(q: Tensor, k: Tensor, v: Tensor, kernel_size: int, dilation: int = 1) -> Tensor:
    """Return k x k (dilated) local attention with outside pixels excluded from the softmax."""
    return _local(q, k, v, kernel_size, masked=True, dilation=dilation)


def local_deformed(
    q: Tensor, k: Tensor, v: Tensor, kernel_size: int, deform_weight: Tensor, deform_bias: Tensor, dilation: int = 1
) -> Tensor:
    """Return Slide attention with deformed shifting, from its two-branch definition.

    Slot s (offset s of the k x k square) sees key k[i + di_s, j + dj_s] plus the learned
    depthwise mix sum_t w[c, s, t] * k[i + di_t, j + dj_t] + b[c, s] (zero padding), where
    w is deform_weight of shape (head_dim, k*k, k*k) shared by all heads. With dilation d
    both branches use the offsets times d (one merged conv with dilation d).
    """
    offsets = _offsets(kernel_size, dilation)
    shifted_k = torch.stack([_shifted(k, di, dj)[0] for di, dj in offsets], dim=-2)
    shifted_v = torch.stack([_shifted(v, di, dj)[0] for di, dj in offsets], dim=-2)
    w = deform_weight.to(k.dtype)  # k's dtype, not float64: correctness also runs this oracle in half precision
    b = deform_bias.to(k.dtype)
    keys = shifted_k + torch.einsum("bhxytc,cst->bhxysc", shifted_k, w) + b.T
    values = shifted_v + torch.einsum("bhxytc,cst->bhxysc", shifted_v, w) + b.T
    return _softmax_weighted_sum(q, keys, values, None)


def _neighbour_indices(length: int, kernel_size: int, dilation: int) -> Tensor:
    """Return, per pixel of one axis, the k pixels NATTEN's (dilated) neighbourhood gives it: (length, k)."""
    pixel = torch.arange(length)
    group, position = pixel % dilation, torch.div(pixel, dilation, rounding_mode="floor")
    group_length = torch.div(length - group + dilation - 1, dilation, rounding_mode="floor")  # its sub-grid's size
    # The ordinary rule on the group's sub-grid: the window clamped inside it, then back to image coordinates.
    start = torch.minimum((position - kernel_size // 2).clamp(min=0), group_length - kernel_size)
    return group[:, None] + dilation * (start[:, None] + torch.arange(kernel_size))


def neighborhood(q: Tensor, k: Tensor, v: Tensor, kernel_size: int, dilation: int = 1) -> Tensor:
    """Return NATTEN's neighbourhood attention: the k x k window clamped inside the image.

    With dilation d, pixels are grouped by (i mod d, j mod d) and each group's sub-grid gets
    the ordinary rule (NATTEN's dilation; needs k * d <= the image side).
    """
    height, width = q.shape[2], q.shape[3]
    rows = _neighbour_indices(height, kernel_size, dilation)  # (height, k)
    cols = _neighbour_indices(width, kernel_size, dilation)  # (width, k)
    row_idx = rows[:, None, :, None].expand(height, width, kernel_size, kernel_size).reshape(height, width, -1)
    col_idx = cols[None, :, None, :].expand(height, width, kernel_size, kernel_size).reshape(height, width, -1)
    keys = k[:, :, row_idx, col_idx]  # (B, H, height, width, k*k, D)
    values = v[:, :, row_idx, col_idx]
    return _softmax_weighted_sum(q, keys, values, None)


def _swin_axis(length: int, window_size: int, shift: int) -> tuple[Tensor, Tensor]:
    """Return, for each pixel of one axis, its window and its region in Swin's rolled frame."""
    rolled = (torch.arange(length) - shift) % length  # roll(-shift) moves pixel i to rolled[i]
    window_index = torch.div(rolled, window_size, rounding_mode="floor")
    if not shift:
        return window_index, torch.zeros(length, dtype=torch.long)
    # Swin's img_mask slices of the rolled frame: [0, L-w), [L-w, L-s), [L-s, L)
    region = (rolled >= length - window_size).long() + (rolled >= length - shift).long()
    return window_index, region


def window(q: Tensor, k: Tensor, v: Tensor, window_size: int, shift: int = 0, bias_table: Tensor | None = None) -> Tensor:
    """Return Swin window attention (W-MSA; SW-MSA with shift > 0) as dense masked attention.

    What official Swin computes: roll the image by -shift, cut it into w x w windows, attend
    within each window with an additive -100 between pixels of different regions (the strips
    that the roll glued together: Swin's img_mask slices (0, -w), (-w, -s), (-s, None) of the
    rolled frame, per axis), softmax, roll back by +shift. Here every query of the unrolled
    image scores every key; a key in another rolled window gets -inf, one in the same window
    but another region gets -100 (not -inf: with large logits such keys keep some weight, as
    in Swin). With a shift the window must divide the image, as Swin's window_partition needs.
    bias_table (heads, 2w-1, 2w-1): Swin's relative position bias, table[h, dy + w-1, dx + w-1]
    added for a query dy rows and dx columns below and right of its key within their window.
    """
    batch, heads, height, width, dim = q.shape
    if shift and (height % window_size or width % window_size):
        raise ValueError(f"shifted windows need window {window_size} to divide {height}x{width}")
    same_window, same_region, relative = _window_layout(height, width, window_size, shift)
    bias = torch.where(same_region, 0.0, -100.0).to(q.dtype).masked_fill(~same_window, float("-inf"))
    flat = lambda x: x.reshape(batch, heads, height * width, dim)  # noqa: E731
    logits = (flat(q) * dim**-0.5) @ flat(k).transpose(-1, -2)
    logits += bias  # in place (here and below): N x N per head is 100+ MB at 56x56, and neither op's backward needs it
    if bias_table is not None:  # table[h, dy + w-1, dx + w-1] for every query-key pair
        logits += bias_table.reshape(heads, -1).to(q.dtype)[:, relative].reshape(heads, height * width, -1)
    return (logits.softmax(dim=-1) @ flat(v)).reshape(batch, heads, height, width, dim)


@functools.lru_cache(maxsize=8)
def _window_layout(height: int, width: int, window_size: int, shift: int) -> tuple[Tensor, Tensor, Tensor]:
    """Return, for every query-key pair of the image (N x N): same rolled window, same region, and the flat index
    (dy + w-1) * (2w-1) + dx + w-1 into a bias table of their offset (query minus key) within the rolled window.
    Data-free, so cached: a Swin oracle model asks for the same few layouts in every block."""
    row_window, row_region = _swin_axis(height, window_size, shift)
    col_window, col_region = _swin_axis(width, window_size, shift)
    window_id = (row_window[:, None] * width + col_window[None, :]).reshape(-1)
    region_id = (row_region[:, None] * 3 + col_region[None, :]).reshape(-1)
    row = ((torch.arange(height) - shift) % height % window_size)[:, None].expand(height, width).reshape(-1)
    col = ((torch.arange(width) - shift) % width % window_size)[None, :].expand(height, width).reshape(-1)
    dy, dx = row[:, None] - row[None, :], col[:, None] - col[None, :]
    relative = ((dy + window_size - 1) * (2 * window_size - 1) + dx + window_size - 1).reshape(-1)
    same = lambda ids: ids[:, None] == ids[None, :]  # noqa: E731
    return same(window_id), same(region_id), relative


def window_shifted(q: Tensor, k: Tensor, v: Tensor, window_size: int, bias_table: Tensor | None = None) -> Tensor:
    """Return shifted-window (Swin SW-MSA) attention with Swin's choice of window and shift.

    As official Swin and timm decide per block: when the image is not larger than the window
    (min(H, W) <= w) the window shrinks to min(H, W) and the shift is 0 (plain W-MSA);
    otherwise the shift is w // 2.
    """
    height, width = q.shape[2], q.shape[3]
    if min(height, width) <= window_size:
        return window(q, k, v, min(height, width), shift=0, bias_table=bias_table)
    return window(q, k, v, window_size, shift=window_size // 2, bias_table=bias_table)


ORACLES = {
    "local-zero-pad": local_zero_pad,
    "local-masked": local_masked,
    "local-deformed": local_deformed,
    "neighborhood": neighborhood,
    "window": window,
    "window-shifted": window_shifted,
}


def oracle(family: str, q: Tensor, k: Tensor, v: Tensor, kernel_size: int, **kwargs: object) -> Tensor:
    """Return the float64 reference output of `family` for canonical q, k, v."""
    as64 = lambda x: x.detach().to("cpu", torch.float64)  # noqa: E731
    kwargs = {name: as64(value) if isinstance(value, Tensor) else value for name, value in kwargs.items()}
    return ORACLES[family](as64(q), as64(k), as64(v), kernel_size, **kwargs)
