"""A Swin-shaped backbone whose attention comes from the registry (bench.models.attention).

Patch 4, MLP ratio 4, LayerNorm, patch merging, a 1000-class head, and a Shape: Swin-T (depths
2-2-6-2, dims 96-192-384-768, heads 3-6-12-24), Swin-S (depths 2-2-18-2) or Swin-B (dims from
128, heads 4-8-16-32), as in the Swin paper's Table 1 and Slide-Transformer's cfgs/slide_swin_*.yaml.
Tokens stay (batch, H, W, C) throughout, and every parameter has timm's name and shape, so
timm's swin_{tiny,small,base}_patch4_window7_224 weights load into the `swin-t`, `swin-s` and
`swin-b` configs as they are (tests/test_models.py checks the output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from bench.models.attention import Attention, AttentionSpec

PATCH = 4
SIDE_MULTIPLE = PATCH * 8  # the image side: a patch of 4, then three halvings, each to a whole number of pixels
MLP_RATIO = 4
CLASSES = 1000

# (stage index, block index, feature-map side) -> the block's attention and its window (the side it attends over).
Layout = Callable[[int, int, int], tuple[AttentionSpec, int]]


@dataclass(frozen=True)
class Shape:
    """A Swin backbone's size: the first stage's width (doubled at each stage), and per stage its blocks and heads."""

    embed_dim: int
    depths: tuple[int, ...]
    heads: tuple[int, ...]

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(self.embed_dim << stage for stage in range(len(self.depths)))


SWIN_T = Shape(96, (2, 2, 6, 2), (3, 6, 12, 24))
SWIN_S = Shape(96, (2, 2, 18, 2), (3, 6, 12, 24))
SWIN_B = Shape(128, (2, 2, 18, 2), (4, 8, 16, 32))


@dataclass(frozen=True)
class Config:
    """A named backbone: its shape, which attention each block gets, and the family's model class (Swin's by default)."""

    name: str
    layout: Layout
    description: str
    shape: Shape = SWIN_T
    family: type[nn.Module] | None = None  # called as family(config, resolution); None: Backbone

    def build(self, resolution: int = 224) -> nn.Module:
        return (self.family or Backbone)(self, resolution)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm residual block around any attention module (the PVT family's too)."""

    def __init__(self, dim: int, attn: nn.Module, mlp: nn.Module, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=eps), attn
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=eps), mlp

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
    def __init__(self, shape: Shape, index: int, side: int, layout: Layout) -> None:
        super().__init__()
        self.downsample = PatchMerging(shape.dims[index - 1]) if index else nn.Identity()
        dim = shape.dims[index]
        self.blocks = nn.Sequential(*(Block(dim, Attention(dim, shape.heads[index], *layout(index, block, side)),
                                            Mlp(dim, MLP_RATIO * dim)) for block in range(shape.depths[index])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class PatchEmbed(nn.Module):
    """A convolution of stride `patch` (kernel `patch`, or a larger odd `kernel` that overlaps, as PVTv2's) of a
    channels-first map (the images by default), then LayerNorm: (batch, H, W, C)."""

    def __init__(self, dim: int, in_dim: int = 3, patch: int = PATCH, kernel: int | None = None) -> None:
        super().__init__()
        kernel = kernel or patch
        self.proj = nn.Conv2d(in_dim, dim, kernel, patch, padding=kernel // 2 if kernel > patch else 0)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class Head(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(1, 2)))


def check_resolution(resolution: int) -> None:
    """Raise ValueError unless a backbone of either family (Swin, PVT) takes images of side `resolution`."""
    if resolution % SIDE_MULTIPLE:
        raise ValueError(f"resolution {resolution}: a Swin or PVT backbone needs a multiple of {SIDE_MULTIPLE}")


class Backbone(nn.Module):
    """config.shape for images of side `resolution` (divisible by 32), attention chosen by config.layout."""

    def __init__(self, config: Config, resolution: int = 224) -> None:
        super().__init__()
        check_resolution(resolution)
        self.config, self.resolution, shape = config, resolution, config.shape
        self.patch_embed = PatchEmbed(shape.dims[0])
        self.layers = nn.Sequential(*(Stage(shape, i, resolution // PATCH >> i, config.layout) for i in range(len(shape.depths))))
        self.norm = nn.LayerNorm(shape.dims[-1])
        self.head = Head(shape.dims[-1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.layers(self.patch_embed(images))))
