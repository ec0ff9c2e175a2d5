"""Attention implementations to benchmark, each registered under a name with its semantics family."""

from attention_variants.case import Case
from attention_variants.registry import FAMILIES, Prepared, Variant, available, get, names, register

# Importing a variant module registers it. A new variant: one new file + one line here.
from attention_variants import im2col, slide, window, natten  # noqa: E402,F401  isort: skip

__all__ = ["CONTRACT", "Case", "FAMILIES", "Prepared", "Variant", "available", "get", "names", "register"]
# What this package provides to a harness that gates against it as a base revision (bench/execution/contract.py).
CONTRACT = 4
from attention_variants import local_fused, halo, flex, slide_variants, local_views, local_tiled  # noqa: E402,F401  isort: skip  (the fast exact variants)
from attention_variants import triton_local  # noqa: E402,F401  isort: skip  (fused Triton kernels, forward and backward)
