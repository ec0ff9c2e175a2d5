"""The PVT family (Pyramid Vision Transformer v1 and v2, Wang et al. 2021 and 2022) with attention chosen per block.

PVT-T/S/M/L as in the PVT paper's Table 1 and whai362/PVT's classification/pvt.py: four stages
of widths 64-128-320-512, heads 1-2-5-8 and MLP ratios 8-8-4-4; each stage starts with a patch
embedding (a strided 4x4, then 2x2, convolution and LayerNorm) and a learned position embedding,
and its blocks use spatial-reduction attention (SRA): every query attends to all tokens of the
map shrunk by a strided convolution (reduction 8-4-2-1) and LayerNorm. The last stage carries a
class token, which the head reads.

PVTv2-B1/B2 (timm's pvt_v2_b1/b2, whose parameter names these use, so timm's weights load):
overlapping patch embeddings (7x7 stride 4, then 3x3 stride 2), no position embedding or class
token, a 3x3 depthwise convolution inside each MLP, a LayerNorm closing each stage, and a head on
the mean token. Their linear forms (the PVTv2 paper's "PVTv2-Li", timm's pvt_v2_b2_li) pool every
map to 7x7 and reduce it by a 1x1 convolution, LayerNorm and GELU instead of the strided
convolution, and add a ReLU before each MLP's depthwise convolution.

A layout (bench.models.configs) gives each block an AttentionSpec, which puts a registry
variant there through the one adapter (bench.models.attention), or None, which keeps SRA:
the Slide and Im2Col forms replace SRA by local attention in stages 1-2.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.attention import Attention
from bench.models.backbone import CLASSES, PATCH, Block, Config, Mlp, PatchEmbed, check_resolution

EPS = 1e-6  # the blocks' and the closing norms' (PVT's norm_layer, timm's LayerNorm); embeddings and SRA keep 1e-5


@dataclass(frozen=True)
class PvtShape:
    """A PVT's size: per stage its width, blocks, heads, MLP ratio and SRA reduction; v2 or v1."""

    dims: tuple[int, ...]
    depths: tuple[int, ...]
    heads: tuple[int, ...] = (1, 2, 5, 8)
    mlp_ratios: tuple[int, ...] = (8, 8, 4, 4)
    reductions: tuple[int, ...] = (8, 4, 2, 1)
    v2: bool = False
    linear: bool = False  # PVTv2-Li's linear SRA (keys and values from the map pooled to 7x7)


PVT_DIMS = (64, 128, 320, 512)
PVT_T = PvtShape(PVT_DIMS, (2, 2, 2, 2))
PVT_S = PvtShape(PVT_DIMS, (3, 4, 6, 3))
PVT_M = PvtShape(PVT_DIMS, (3, 4, 18, 3))
PVT_L = PvtShape(PVT_DIMS, (3, 8, 27, 3))
PVT_V2_B1 = PvtShape(PVT_DIMS, (2, 2, 2, 2), v2=True)
PVT_V2_B2 = PvtShape(PVT_DIMS, (3, 4, 6, 3), v2=True)
PVT_V2_B1_LI = replace(PVT_V2_B1, linear=True)
PVT_V2_B2_LI = replace(PVT_V2_B2, linear=True)
LINEAR_SIDE = 7  # PVTv2-Li pools every map to 7x7 (upsampling smaller ones, as AdaptiveAvgPool2d does)


class SpatialReductionAttention(nn.Module):
    """PVT's attention over (batch, H, W, C) maps, or (batch, N, C) tokens where there is no reduction."""

    def __init__(self, dim: int, heads: int, reduction: int, linear: bool = False) -> None:
        super().__init__()
        self.heads, self.reduced = heads, linear or reduction > 1
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        # Keys and values from the map reduced by pool, sr, norm, act (timm's names; Identity holds no weights).
        if linear:
            self.pool, self.sr = nn.AdaptiveAvgPool2d(LINEAR_SIDE), nn.Conv2d(dim, dim, 1)
            self.norm, self.act = nn.LayerNorm(dim), nn.GELU()
        elif reduction > 1:
            self.pool, self.sr = nn.Identity(), nn.Conv2d(dim, dim, reduction, reduction)
            self.norm, self.act = nn.LayerNorm(dim), nn.Identity()
        self.oracle_mode = False  # bench.models.attention.set_oracle_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, dim = x.shape[0], x.shape[-1]
        tokens = x.reshape(batch, -1, dim)
        context = tokens
        if self.reduced:
            context = self.act(self.norm(self.sr(self.pool(x.permute(0, 3, 1, 2))).flatten(2).transpose(1, 2)))
        q = self.q(tokens).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        k, v = self.kv(context).unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4)
        out = softmax_attention(q, k, v) if self.oracle_mode else F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(tokens.shape)).reshape(x.shape)


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SRA's oracle: softmax(q k^T / sqrt(head_dim)) v written out (the timed path is PyTorch's fused kernel)."""
    return torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1) @ v


class DepthwiseMlp(nn.Module):
    """PVTv2's MLP: a 3x3 depthwise convolution between the two linear layers, on (batch, H, W, C) maps; PVTv2-Li
    puts a ReLU before the convolution."""

    def __init__(self, dim: int, hidden: int, relu: bool = False) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        self.relu = nn.ReLU() if relu else nn.Identity()
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.relu(self.fc1(x)).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)))


class PvtStage(nn.Module):
    """One stage on (batch, H, W, C) maps: downsampling (stages 2-4), position embedding (v1), blocks, closing norm (v2)."""

    def __init__(self, config: Config, index: int, side: int) -> None:
        super().__init__()
        shape, dim = config.shape, config.shape.dims[index]
        last, v1 = index == len(shape.depths) - 1, not shape.v2
        self.side = side
        if index:
            self.downsample = PatchEmbed(dim, shape.dims[index - 1], 2, kernel=3 if shape.v2 else 2)
        self.cls_token = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, 1, dim), std=0.02)) if v1 and last else None
        if v1:
            self.pos_embed = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, side * side + last, dim), std=0.02))
        hidden = shape.mlp_ratios[index] * dim
        self.blocks = nn.Sequential(*(Block(dim, _attention(config, index, block, side, v1 and last),
                                            DepthwiseMlp(dim, hidden, shape.linear) if shape.v2 else Mlp(dim, hidden), EPS)
                                      for block in range(shape.depths[index])))
        self.norm = nn.LayerNorm(dim, eps=EPS) if shape.v2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A map in, a map out; v1's last stage: (batch, 1 + H*W, C) tokens out, the class token first."""
        if hasattr(self, "downsample"):
            x = self.downsample(x.permute(0, 3, 1, 2))
        if not hasattr(self, "pos_embed"):
            return self.norm(self.blocks(x))
        if self.cls_token is None:
            return self.blocks(x + self.pos_embed.view(1, self.side, self.side, -1))
        tokens = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x.flatten(1, 2)), dim=1)
        return self.blocks(tokens + self.pos_embed)


def _attention(config: Config, stage: int, block: int, side: int, class_token: bool) -> nn.Module:
    """Return the block's attention: the layout's registry variant, or SRA where the layout says None."""
    spec, window = config.layout(stage, block, side)
    dim, heads = config.shape.dims[stage], config.shape.heads[stage]
    if spec is None:
        return SpatialReductionAttention(dim, heads, config.shape.reductions[stage], config.shape.linear)
    if class_token:
        raise ValueError(f"{config.name}: PVT's last stage carries a class token, so it keeps SRA")
    return Attention(dim, heads, spec, window)


class Pvt(nn.Module):
    """config.shape for images of side `resolution` (divisible by 32), attention chosen by config.layout."""

    def __init__(self, config: Config, resolution: int = 224) -> None:
        super().__init__()
        check_resolution(resolution)
        self.config, self.resolution, shape = config, resolution, config.shape
        self.patch_embed = PatchEmbed(shape.dims[0], kernel=7 if shape.v2 else None)
        self.stages = nn.Sequential(*(PvtStage(config, i, resolution // PATCH >> i) for i in range(len(shape.dims))))
        if not shape.v2:
            self.norm = nn.LayerNorm(shape.dims[-1], eps=EPS)
        self.head = nn.Linear(shape.dims[-1], CLASSES)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.patch_embed(images))
        return self.head(x.mean(dim=(1, 2)) if self.config.shape.v2 else self.norm(x)[:, 0])
