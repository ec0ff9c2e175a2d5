"""The seeded canonical inputs of a case: q, k, v of shape (batch, heads, height, width, head_dim)."""

from __future__ import annotations

import torch

from attention_variants.case import Case


def make_inputs(case: Case, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return seeded canonical q, k, v (batch, heads, height, width, head_dim) on the case's device."""
    generator = torch.Generator().manual_seed(seed)
    shape = (case.batch, case.heads, case.height, case.width, case.head_dim)
    return tuple(torch.randn(shape, generator=generator).to(case.device, case.torch_dtype) for _ in range(3))


def make_grad_out(case: Case, seed: int) -> torch.Tensor:
    """Return the seeded canonical upstream gradient of a forward_backward case (the output's shape, device and dtype)."""
    generator = torch.Generator().manual_seed(seed + 7919)  # not q, k or v of the same seed
    shape = (case.batch, case.heads, case.height, case.width, case.head_dim)
    return torch.randn(shape, generator=generator).to(case.device, case.torch_dtype)
