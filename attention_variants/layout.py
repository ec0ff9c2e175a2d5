"""Convert canonical (batch, heads, H, W, head_dim) tensors to and from the variants' native layouts.

Each pair is exact and differentiable (permute, reshape, contiguous), so a variant's inputs
stay leaves of the canonical tensors' graph and its output maps back for the oracle check.
"""

from __future__ import annotations

import torch


def to_channels_first(t: torch.Tensor) -> torch.Tensor:
    """Return canonical t as a contiguous (batch*heads, head_dim, H, W) tensor."""
    batch, heads, height, width, dim = t.shape
    return t.permute(0, 1, 4, 2, 3).reshape(batch * heads, dim, height, width).contiguous()


def from_channels_first(out: torch.Tensor, batch: int, heads: int) -> torch.Tensor:
    """Return (batch*heads, head_dim, H, W) out as a canonical (batch, heads, H, W, head_dim) view."""
    _, dim, height, width = out.shape
    return out.view(batch, heads, dim, height, width).permute(0, 1, 3, 4, 2)


def to_heads_last(t: torch.Tensor) -> torch.Tensor:
    """Return canonical t as a contiguous (batch, H, W, heads, head_dim) tensor (Swin's and NATTEN's layout)."""
    return t.permute(0, 2, 3, 1, 4).contiguous()


def from_heads_last(out: torch.Tensor) -> torch.Tensor:
    """Return (batch, H, W, heads, head_dim) out as a canonical (batch, heads, H, W, head_dim) view."""
    return out.permute(0, 3, 1, 2, 4)


def to_channels_last(t: torch.Tensor) -> torch.Tensor:
    """Return canonical t as a contiguous (batch*heads, H, W, head_dim) tensor: one channels-last image per head."""
    batch, heads, height, width, dim = t.shape
    return t.reshape(batch * heads, height, width, dim).contiguous()


def from_channels_last(out: torch.Tensor, batch: int, heads: int) -> torch.Tensor:
    """Return (batch*heads, H, W, head_dim) out as a canonical (batch, heads, H, W, head_dim) view."""
    _, height, width, dim = out.shape
    return out.view(batch, heads, height, width, dim)
