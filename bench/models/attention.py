"""The one adapter between a backbone block and the registry: qkv projection -> canonical q, k, v -> variant -> projection.

The variant is built once per input shape (as a real model holds its kernels and masks as
buffers) from the first q, k, v of that shape; later calls feed new tensors through the same
closure, in the variant's own layout (found by checking which of attention_variants.layout's
maps turned the canonical tensors into the built inputs). A variant whose inputs are none of
those is rebuilt on every call, which is slower but still right.

In oracle mode (set_oracle_mode) the same module computes its family's oracle instead, in the
model's dtype on the CPU: in float64, the model's correctness reference; in the case's dtype,
the plain formulation that sets the bound (bench.models.measure).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

import attention_variants as av
from attention_variants import layout
from attention_variants.case import Case
from attention_variants.reference import ORACLES

NATIVE_LAYOUTS: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = (
    lambda t: t, layout.to_channels_first, layout.to_heads_last, layout.to_channels_last)


class UnsupportedStage(ValueError):
    """A variant that cannot run a stage's shape (the model's row is `skipped` with this reason)."""


@dataclass(frozen=True)
class AttentionSpec:
    """What one block's attention is: a registered variant, its kernel (or window) size, and
    whether it carries Swin's relative position bias (window families only)."""

    variant: str
    kernel_size: int
    relative_bias: bool = False


class _Built:
    """A variant built for one input shape: call it with canonical q, k, v."""

    def __init__(self, variant: av.Variant, case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        self.variant, self.case = variant, case
        self.prepared = variant.build(case, q, k, v)
        self.native = _native_layout(self.prepared, q, k, v)
        self.takes_bias = "bias" in inspect.signature(self.prepared.fn).parameters

    def __call__(self, q, k, v, bias=None) -> torch.Tensor:
        prepared = self.prepared if self.native is not None else self.variant.build(self.case, q, k, v)
        inputs = tuple(self.native(t) for t in (q, k, v)) if self.native is not None else prepared.inputs
        out = prepared.fn(*inputs, bias=bias) if bias is not None else prepared.fn(*inputs)
        return prepared.to_canonical(out)


class Attention(nn.Module):
    """Multi-head attention of one block, on (batch, H, W, C) tokens, with timm Swin's parameter names."""

    def __init__(self, dim: int, heads: int, spec: AttentionSpec, window: int) -> None:
        super().__init__()
        self.heads, self.spec, self.window = heads, spec, window
        self.variant = av.get(spec.variant)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        if spec.relative_bias:
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", _relative_index(window), persistent=False)
        self.oracle_mode = False  # set_oracle_mode
        self._built: dict[tuple, _Built] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, dim = x.shape
        qkv = self.qkv(x).reshape(batch, height, width, 3, self.heads, dim // self.heads).permute(3, 0, 4, 1, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]  # canonical (batch, heads, H, W, head_dim)
        out = self._oracle(q, k, v) if self.oracle_mode else self._variant(q, k, v)
        return self.proj(out.permute(0, 2, 3, 1, 4).reshape(batch, height, width, dim))

    def _bias(self) -> torch.Tensor | None:
        if not self.spec.relative_bias:
            return None
        n = self.window * self.window
        return self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)

    def _variant(self, q, k, v) -> torch.Tensor:
        trains = torch.is_grad_enabled() and q.requires_grad
        key = (tuple(q.shape), q.dtype, q.device, trains)
        if key not in self._built:
            self._built[key] = self._build(q, k, v, trains)
        return self._built[key](q, k, v, self._bias())

    def _build(self, q, k, v, trains: bool) -> _Built:
        batch, heads, height, width, head_dim = q.shape
        # A training step's case asks for a backward: a forward-only kernel refuses it instead of cutting the gradient.
        pass_name = "forward_backward" if trains else "forward"
        case = Case(variant=self.spec.variant, device=q.device.type, dtype=str(q.dtype).removeprefix("torch."), batch=batch,
                    height=height, width=width, heads=heads, head_dim=head_dim, kernel_size=self.spec.kernel_size,
                    pass_name=pass_name)
        reason = self.variant.supports(case)
        if reason:
            raise UnsupportedStage(f"{self.spec.variant} cannot run a {height}x{width} stage: {reason}")
        built = _Built(self.variant, case, q, k, v)
        if self.spec.relative_bias and not built.takes_bias:
            raise UnsupportedStage(f"{self.spec.variant} takes no relative position bias")
        return built

    def _oracle(self, q, k, v) -> torch.Tensor:
        extra: dict[str, object] = {}
        if self.spec.relative_bias:
            side = 2 * self.window - 1
            extra["bias_table"] = self.relative_position_bias_table.T.reshape(self.heads, side, side)
        if self.variant.family == "local-deformed":  # the learned kernel the variant builds for itself
            extra.update(self._variant_oracle_kwargs(q, k, v))
        extra = {name: value.to(q.dtype) if isinstance(value, torch.Tensor) else value for name, value in extra.items()}
        return ORACLES[self.variant.family](q, k, v, self.spec.kernel_size, **extra)

    def _variant_oracle_kwargs(self, q, k, v) -> dict[str, object]:
        case = Case(variant=self.spec.variant, batch=q.shape[0], height=q.shape[2], width=q.shape[3], heads=q.shape[1],
                    head_dim=q.shape[4], kernel_size=self.spec.kernel_size)
        return self.variant.build(case, q.float(), k.float(), v.float()).oracle_kwargs


def _native_layout(prepared: av.Prepared, q, k, v) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Return the map of attention_variants.layout that turned q, k, v into the built inputs, or None."""
    if len(prepared.inputs) != 3:
        return None
    return next((to for to in NATIVE_LAYOUTS if all(torch.equal(to(t), built) for t, built in zip((q, k, v), prepared.inputs))),
                None)


def _relative_index(window: int) -> torch.Tensor:
    """Return timm Swin's relative_position_index for a window: (w*w, w*w) indices into the bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[:, :, 0] * (2 * window - 1) + relative[:, :, 1]


def set_oracle_mode(model: nn.Module, on: bool) -> None:
    """Make every attention of model (on the CPU) compute its oracle in the model's dtype (on) or its variant (off).

    Every module with an `oracle_mode` flag takes part: this adapter, and a family's own attention (PVT's SRA).
    """
    for module in model.modules():
        if hasattr(module, "oracle_mode"):
            module.oracle_mode = on
