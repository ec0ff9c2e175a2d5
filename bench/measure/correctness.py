"""Correctness of one case: its output against the float64 oracle of its family, and the verdict.

Why the accepted error is measured per case and not fixed per dtype: in bfloat16 a correct
Im2Col is 0.005-0.02 off the float64 oracle, so a fixed bound loose enough for every correct
variant (6e-2) also accepted a softmax scale of 1/sqrt(d+1) instead of 1/sqrt(d). How close a
dtype can get depends on the inputs, the kernel and head_dim, so the check measures it: the
family's oracle, a plain formulation in torch ops, is run in the case's dtype on the same
inputs and compared with the float64 oracle (the "plain" errors). A variant must then stay
within MAX_FACTOR times the plain formulation's largest error (catches a bug in a few outputs)
and MEAN_FACTOR times its mean error (catches a small bug in every output: in bfloat16 the wrong
scale at head_dim 64 is lost among rounding in the max, while it moves the mean error 2.2x or
more). Both bounds get a floor at float32's rounding level and never exceed the dtype's fixed
TOLERANCE. docs/measuring.md "Correctness" and scripts/tolerance_margins.py give the measured margins.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import attention_variants as av
from attention_variants.case import Case
from attention_variants.reference import ORACLES, oracle
from bench.measure.inputs import make_inputs
from bench.results.schema import TOLERANCE

# The oracle gathers k*k neighbours in float64: past this many elements, check a reduced copy.
ORACLE_ELEMENT_BUDGET = 10_000_000
# Measured on every registered variant (scripts/tolerance_margins.py: 13 shapes x 3 seeds): max
# error up to 2.8x the plain formulation's, mean error up to 1.28x in half precision (float32: 3.2x
# and 2.0x, under the floor). Planted bugs: max 22x and more, except the wrong scale, whose mean is
# 2.2x at head_dim 64 in bfloat16; 1.75 sits between (1.37x room for correct ones, 1.27x for it).
MAX_FACTOR = 4.0
MEAN_FACTOR = 1.75
# Below float32's rounding the comparison says nothing: float32 variants differ from the plain
# formulation by summation order only (max <= 1.4e-6, mean <= 6e-8 measured), and float64's plain
# error is 0 by construction. Negligible in half precision (plain max >= 4e-4, mean >= 2e-5).
MAX_FLOOR = 16 * torch.finfo(torch.float32).eps
MEAN_FLOOR = torch.finfo(torch.float32).eps


@dataclass(frozen=True)
class OracleCheck:
    """The errors of one case against the float64 oracle: the variant's, the plain formulation's, the bounds."""

    error: float  # max |variant - float64 oracle|
    mean_error: float  # mean |variant - float64 oracle|
    plain_error: float  # max |family oracle run in the case's dtype - float64 oracle|
    plain_mean_error: float
    tolerance: float  # the largest `error` accepted
    mean_tolerance: float  # the largest `mean_error` accepted
    note: str = ""
    scale: float = 1.0  # what the floor and the dtype's fixed cap are relative to (a gradient's largest magnitude)


@dataclass(frozen=True)
class Verdict:
    """What a row records of the oracle check: its max_abs_err (drift included), the bound, why not ok."""

    max_abs_err: float
    tolerance: float
    reason: str  # '' when the row is ok


def bound(factor: float, plain: float, floor: float, dtype: str, scale: float = 1.0, capped: bool = True) -> float:
    """Return the largest error accepted: factor x the plain formulation's + floor (x scale), and at most the
    dtype's fixed bound (x scale) when capped."""
    if plain != plain or plain == float("inf"):  # nothing plain to compare with: the fixed bound
        return TOLERANCE[dtype] * scale
    relative = factor * plain + floor * scale
    return min(relative, TOLERANCE[dtype] * scale) if capped else relative


def errors(out: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """Return max and mean |out - expected|, out moved to the CPU in float64."""
    diff = (out.detach().to("cpu", torch.float64) - expected).abs()
    return diff.max().item(), diff.mean().item()


def plain_errors(family: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int,
                 expected: torch.Tensor, **oracle_kwargs: object) -> tuple[float, float]:
    """Return max and mean |family oracle run in q's dtype on the CPU - expected|: what plain torch ops reach there."""
    if q.dtype == torch.float64:  # the oracle itself: the same ops on the same numbers
        return 0.0, 0.0
    cast = lambda x: x.detach().to("cpu", q.dtype)  # noqa: E731
    kwargs = {name: cast(value) if isinstance(value, torch.Tensor) else value for name, value in oracle_kwargs.items()}
    with torch.no_grad():
        return errors(ORACLES[family](cast(q), cast(k), cast(v), kernel_size, **kwargs), expected)


def oracle_kwargs(case: Case, prepared: av.Prepared) -> dict[str, object]:
    """Return the oracle's extra arguments: the variant's own (e.g. a learned kernel) and the case's dilation."""
    # Only a dilated case passes dilation: the window oracles, which have none, keep their signature.
    dilation = {"dilation": case.dilation} if case.dilation != 1 else {}  # an older Case has it too (bench/execution/contract.py)
    return {**prepared.oracle_kwargs, **dilation}


def oracle_check(variant: av.Variant, case: Case, seed: int) -> OracleCheck:
    """Return the variant's errors against the float64 oracle on the case, and the errors accepted there."""
    checked = case if case.neighbour_elements <= ORACLE_ELEMENT_BUDGET else case.replace(batch=1, heads=1)
    q, k, v = make_inputs(checked, seed)
    prepared = variant.build(checked, q, k, v)
    with torch.no_grad():
        out = prepared.to_canonical(prepared.fn(*prepared.inputs))
    kwargs = oracle_kwargs(checked, prepared)
    expected = oracle(variant.family, q, k, v, checked.kernel_size, **kwargs)
    error, mean_error = errors(out, expected)
    plain, plain_mean = plain_errors(variant.family, q, k, v, checked.kernel_size, expected, **kwargs)
    note = "" if checked is case else "max_abs_err on a reduced copy (batch 1, heads 1)"
    return OracleCheck(error, mean_error, plain, plain_mean, bound(MAX_FACTOR, plain, MAX_FLOOR, case.dtype),
                       bound(MEAN_FACTOR, plain_mean, MEAN_FLOOR, case.dtype), note)


def verdict(check: OracleCheck, dtype: str, traced: bool = False, drift: float = 0.0) -> Verdict:
    """Return the row's max_abs_err, its tolerance and why it is a `mismatch` ('' when ok; NaN is a mismatch).

    A traced row's (inductor, export, onnxruntime) max_abs_err adds the traced-vs-eager drift (of the gradients, for
    forward_backward), which no plain formulation predicts: its bound is the dtype's fixed
    TOLERANCE, while the eager output still has to meet the mean bound.
    """
    error = check.error + drift
    tolerance = max(TOLERANCE[dtype] * check.scale, check.tolerance) if traced else check.tolerance
    reasons = []
    if not error <= tolerance:
        reasons.append(f"max_abs_err {error:.3g} > tolerance {tolerance:.3g} "
                       f"({_rule(MAX_FACTOR, check.plain_error, tolerance, dtype, check.scale)})")
    if not check.mean_error <= check.mean_tolerance:
        reasons.append(f"mean_abs_err {check.mean_error:.3g} > mean_tolerance {check.mean_tolerance:.3g} "
                       f"({_rule(MEAN_FACTOR, check.plain_mean_error, check.mean_tolerance, dtype, check.scale)})")
    return Verdict(error, tolerance, "; ".join(reasons))


def _rule(factor: float, plain: float, accepted: float, dtype: str, scale: float) -> str:
    if accepted == TOLERANCE[dtype] * scale:  # the same product bound() and verdict() chose
        return f"the fixed bound for {dtype}" + (f" x the largest gradient {scale:.3g}" if scale != 1.0 else "")
    return f"{factor:g} x the plain {dtype} formulation's {plain:.3g} + floor"
