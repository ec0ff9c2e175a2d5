"""Test-only plugin: `cuda-sleeps` (known GPU time, launched asynchronously) and `cuda-allocates` (more than the GPU holds).

Registered only by this module (`--plugin tests.plugins.cuda_faults`), for tests/test_cuda.py.
"""

from __future__ import annotations

import torch

from attention_variants.case import Case
from attention_variants.registry import Prepared, Variant, register

SLEEP_CYCLES = 20_000_000  # about 10-20 ms of GPU clock: far longer than launching it


def _on_cuda(case: Case) -> str | None:
    return None if case.device.startswith("cuda") and torch.cuda.is_available() else "needs a CUDA device"


def _sleeps(case: Case, q, k, v) -> Prepared:
    def fn(query, key, value):
        torch.cuda._sleep(SLEEP_CYCLES)  # returns at once; the GPU stays busy
        return query
    return Prepared(fn=fn, inputs=(q, k, v), to_canonical=lambda out: out)


def _allocates(case: Case, q, k, v) -> Prepared:
    too_much = 2 * torch.cuda.get_device_properties(q.device).total_memory // 4  # float32 elements: twice the GPU

    def fn(query, key, value):
        return torch.empty(too_much, dtype=torch.float32, device=query.device)
    return Prepared(fn=fn, inputs=(q, k, v), to_canonical=lambda out: out)


register(Variant("cuda-sleeps", "local-zero-pad", _sleeps, _on_cuda, "spins the GPU for SLEEP_CYCLES (timing test)"))
register(Variant("cuda-allocates", "local-zero-pad", _allocates, _on_cuda, "allocates twice the GPU's memory"))
