"""Correctness of one case: its output against the float64 oracle of its family, and the verdict."""

from __future__ import annotations

import torch

import attention_variants as av
from attention_variants.case import Case
from attention_variants.reference import oracle
from bench.measure.inputs import make_inputs
from bench.results.schema import TOLERANCE

# The oracle gathers k*k neighbours in float64: past this many elements, check a reduced copy.
ORACLE_ELEMENT_BUDGET = 10_000_000


def oracle_error(variant: av.Variant, case: Case, seed: int) -> tuple[float, str]:
    """Return max |output - float64 oracle| of the variant on the case, and a note on what was checked."""
    checked = case if case.neighbour_elements <= ORACLE_ELEMENT_BUDGET else case.replace(batch=1, heads=1)
    q, k, v = make_inputs(checked, seed)
    prepared = variant.build(checked, q, k, v)
    with torch.no_grad():
        out = prepared.to_canonical(prepared.fn(*prepared.inputs))
    expected = oracle(variant.family, q, k, v, checked.kernel_size, **prepared.oracle_kwargs)
    error = (out.detach().to("cpu", torch.float64) - expected).abs().max().item()
    note = "" if checked is case else "max_abs_err on a reduced copy (batch 1, heads 1)"
    return error, note


def mismatch_reason(error: float, dtype: str) -> str:
    """Return why an error makes the row a `mismatch` (above the dtype's tolerance, or NaN), else ''."""
    if error <= TOLERANCE[dtype]:
        return ""
    return f"max_abs_err {error:.3g} > tolerance {TOLERANCE[dtype]:g} for {dtype}"
