"""A Swin-T-shaped backbone whose attention comes from the registry (bench.models.attention).

Patch 4, depths 2-2-6-2, dims 96-192-384-768, heads 3-6-12-24, MLP ratio 4, LayerNorm, patch
merging, a 1000-class head: Swin-T. Tokens stay (batch, H, W, C) throughout, and every
parameter has timm's name and shape, so timm's swin_tiny_patch4_window7_224 weights load into
the `swin-t` config as they are (tests/test_models.py checks the output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from bench.models.attention import Attention, AttentionSpec

DEPTHS = (2, 2, 6, 2)
DIMS = (96, 192, 384, 768)
HEADS = (3, 6, 12, 24)
PATCH = 4
MLP_RATIO = 4
CLASSES = 1000

# (stage index, block index, feature-map side) -> the block's attention and its window (the side it attends over).
Layout = Callable[[int, int, int], tuple[AttentionSpec, int]]


@dataclass(frozen=True)
class Config:
    """A named backbone: which attention each block gets."""

    name: str
    layout: Layout
    description: str


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, spec: AttentionSpec, window: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, spec, window)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, MLP_RATIO * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Each 2x2 patch's four tokens concatenated (timm's order), normalised and projected to twice the channels."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm, self.reduction = nn.LayerNorm(4 * dim), nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, dim = x.shape
        x = x.reshape(batch, height // 2, 2, width // 2, 2, dim).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class Stage(nn.Module):
    def __init__(self, index: int, side: int, layout: Layout) -> None:
        super().__init__()
        self.downsample = PatchMerging(DIMS[index - 1]) if index else nn.Identity()
        self.blocks = nn.Sequential(*(Block(DIMS[index], HEADS[index], *layout(index, block, side))
                                      for block in range(DEPTHS[index])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class PatchEmbed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj, self.norm = nn.Conv2d(3, DIMS[0], PATCH, PATCH), nn.LayerNorm(DIMS[0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(images).permute(0, 2, 3, 1))


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(DIMS[-1], CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(1, 2)))


class Backbone(nn.Module):
    """The Swin-T shape for images of side `resolution` (divisible by 32), attention chosen by config.layout."""

    def __init__(self, config: Config, resolution: int = 224) -> None:
        super().__init__()
        if resolution % (PATCH * 8):
            raise ValueError(f"resolution {resolution}: a Swin-T backbone needs a multiple of {PATCH * 8}")
        self.config, self.resolution = config, resolution
        self.patch_embed = PatchEmbed()
        self.layers = nn.Sequential(*(Stage(i, resolution // PATCH >> i, config.layout) for i in range(len(DEPTHS))))
        self.norm = nn.LayerNorm(DIMS[-1])
        self.head = Head()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.layers(self.patch_embed(images))))
