"""NATTEN's na2d (neighbourhood attention), with the backend NATTEN picks on the device."""

from __future__ import annotations

import warnings

import torch

from attention_variants.case import Case
from attention_variants.layout import from_heads_last, to_heads_last
from attention_variants.registry import Prepared, Variant, register

try:
    import natten as _natten
    from natten.backends import choose_backend as _choose_backend

    HAS_NATTEN = True
    NATTEN_VERSION = _natten.__version__
except ImportError:
    HAS_NATTEN = False
    NATTEN_VERSION = ""


def supports(case: Case) -> str | None:
    """Return why NATTEN cannot run the case, if it cannot."""
    if not HAS_NATTEN:
        return "natten is not installed (pip install natten)"
    if case.kernel_size > min(case.height, case.width):
        return f"natten needs kernel {case.kernel_size} <= {case.height}x{case.width}"
    if case.device == "cpu" and case.needs_grad:
        return "natten's CPU backend (unfused FlexAttention) has no backward"
    if case.device == "cpu" and case.compiled:
        return "natten does not compile FlexAttention on CPU"
    return None


def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return na2d over heads-last (batch, H, W, heads, head_dim) inputs."""
    qn, kn, vn = to_heads_last(q), to_heads_last(k), to_heads_last(v)
    backend = _choose_backend(qn, kn, vn, torch_compile=False)

    def fn(query, key, value):
        with warnings.catch_warnings():
            # On CPU NATTEN runs FlexAttention eagerly and warns on every call that it is unfused.
            warnings.simplefilter("ignore")
            return _natten.na2d(query, key, value, case.kernel_size, backend=backend)

    return Prepared(fn=fn, inputs=(qn, kn, vn), to_canonical=from_heads_last, backend=backend)


register(Variant("natten", "neighborhood", build, supports, "natten.na2d, backend chosen by NATTEN"))
