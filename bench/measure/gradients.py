"""Correctness of a forward_backward case's gradients: dq, dk, dv against the float64 oracle's.

Why it is checked: a hand-written backward with a right forward is the easiest bug to ship, and a
timed forward_backward row is only worth its number if the gradients it computes are right. The
rule is the forward's (bench/measure/correctness.py), per input: the family's oracle run through
autograd in the case's dtype (the plain formulation) shows how close that dtype gets to the
float64 oracle's gradients, and the variant's gradient must stay within MAX_FACTOR times its
largest error and MEAN_FACTOR times its mean error. Gradients are not of order 1 as outputs are,
so the floor scales with the float64 gradient's largest magnitude; unlike the output's, the bound
has no fixed cap (see tensor_check), and a traced runtime's largest error may reach the larger of
the bound and the dtype's fixed bound times that magnitude (see gradient_verdict).

The gradients checked are those of the timed closure's first call (its runtime's, compiled
ones included), on the timed inputs and for an upstream gradient drawn from the case's seed.
A case too large for the float64 oracle is checked on an eager reduced copy instead, plus the
runtime's drift from eager on the full case, as the forward check does; `reason` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

import attention_variants as av
from attention_variants.case import Case
from attention_variants.reference import ORACLES
from bench.measure.callables import FirstCall
from bench.measure.correctness import (
    MAX_FACTOR,
    MAX_FLOOR,
    MEAN_FACTOR,
    MEAN_FLOOR,
    ORACLE_ELEMENT_BUDGET,
    OracleCheck,
    Verdict,
    bound,
    errors,
    oracle_kwargs,
    verdict,
)
from bench.measure.inputs import make_grad_out, make_inputs

INPUT_NAMES = ("q", "k", "v")


@dataclass(frozen=True)
class GradientVerdict:
    """What a row records of the gradient check: the input closest to its bounds, its errors and bounds, why not ok."""

    max_abs_err: float
    tolerance: float
    mean_abs_err: float
    mean_tolerance: float
    reason: str  # '' when every input's gradient is within its bounds
    note: str = ""  # how the gradients were checked, when not on the timed closure itself


def fits_oracle(case: Case) -> bool:
    """Return whether the float64 oracle's backward is cheap enough to run on the whole case (1.2 s, 1 GB at the budget)."""
    return case.neighbour_elements <= ORACLE_ELEMENT_BUDGET


def differentiable_inputs(case: Case, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the case's seeded canonical q, k, v as leaves that record the variant's layout change in build()."""
    return tuple(t.requires_grad_(True) for t in make_inputs(case, seed))


def canonical_gradients(prepared: av.Prepared, leaves: tuple[torch.Tensor, ...],
                        native: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Return dq, dk, dv in canonical layout from the gradients of prepared.inputs (built from `leaves`)."""
    connected = [t for t in prepared.inputs if t.requires_grad]
    if len(connected) != len(prepared.inputs):
        raise RuntimeError("the variant's inputs are not differentiable functions of q, k, v "
                           "(build() must change their layout with torch ops, not under no_grad)")
    return torch.autograd.grad(prepared.inputs, leaves, native, allow_unused=True)


def oracle_gradients(family: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int,
                     grad_out: torch.Tensor, dtype: torch.dtype, **kwargs: object) -> tuple[torch.Tensor, ...]:
    """Return dq, dk, dv of sum(oracle(q, k, v) * grad_out), computed on the CPU in dtype."""
    cast = lambda x: x.detach().to("cpu", dtype)  # noqa: E731
    leaves = tuple(cast(t).requires_grad_(True) for t in (q, k, v))
    extra = {name: cast(value) if isinstance(value, torch.Tensor) else value for name, value in kwargs.items()}
    with torch.enable_grad():
        out = ORACLES[family](*leaves, kernel_size, **extra)
        return torch.autograd.grad(out, leaves, cast(grad_out))


def gradient_checks(family: str, case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad_out: torch.Tensor,
                    grads: tuple[torch.Tensor | None, ...], **kwargs: object) -> dict[str, OracleCheck]:
    """Return, per input name, the variant's gradient errors against the float64 oracle and the errors accepted."""
    expected = oracle_gradients(family, q, k, v, case.kernel_size, grad_out, torch.float64, **kwargs)
    plain = expected if case.dtype == "float64" else oracle_gradients(
        family, q, k, v, case.kernel_size, grad_out, case.torch_dtype, **kwargs)
    same = case.dtype == "float64"
    return {name: tensor_check(grad, reference, None if same else plain_grad, case.dtype)
            for name, grad, reference, plain_grad in zip(INPUT_NAMES, grads, expected, plain)}


def tensor_check(grad: torch.Tensor | None, reference: torch.Tensor, plain: torch.Tensor | None, dtype: str) -> OracleCheck:
    """Return one gradient's errors against its float64 reference and the bounds that the plain one's errors set
    (None: float64, where plain is the reference); the floor scales with the reference's largest value."""
    error, mean_error = errors(torch.zeros_like(reference) if grad is None else grad, reference)
    plain_error, plain_mean = (0.0, 0.0) if plain is None else errors(plain, reference)
    scale = max(reference.abs().max().item(), torch.finfo(torch.float32).tiny)
    # Uncapped: through a deep backward (a model's LayerNorm bias sums 3136 tokens) the plain bfloat16 gradient is
    # itself 70 % off, past any fixed bound; a variant is held to what its dtype reaches, as a model's output is.
    return OracleCheck(error, mean_error, plain_error, plain_mean,
                       bound(MAX_FACTOR, plain_error, MAX_FLOOR, dtype, scale, capped=False),
                       bound(MEAN_FACTOR, plain_mean, MEAN_FLOOR, dtype, scale, capped=False), scale=scale)


def reduced_gradient_checks(variant: av.Variant, case: Case, seed: int) -> dict[str, OracleCheck]:
    """Return the gradient checks of the variant run eagerly on a copy of the case with batch 1 and heads 1."""
    reduced = case.replace(batch=1, heads=1, runtime="eager")
    leaves = differentiable_inputs(reduced, seed)
    prepared = variant.build(reduced, *leaves)
    grad_out = make_grad_out(reduced, seed)
    native = tuple(t.detach().requires_grad_(True) for t in prepared.inputs)
    out = prepared.to_canonical(prepared.fn(*native))
    grads = canonical_gradients(prepared, leaves, torch.autograd.grad(out, native, grad_out, allow_unused=True))
    return gradient_checks(variant.family, reduced, *leaves, grad_out, grads, **oracle_kwargs(reduced, prepared))


def gradient_verdict(checks: dict[str, OracleCheck], dtype: str, traced: bool = False, drift: float = 0.0,
                     name_each: bool = True) -> GradientVerdict:
    """Return the row's gradient columns and reason: each failing input named, the one nearest its bounds recorded.

    Traced: each input's largest error (plus the runtime's drift from eager, when a reduced eager
    copy stands for the traced runtime) may reach the larger of its bound and the dtype's fixed
    bound times the gradient's magnitude, as a traced forward's may; the mean bound stays.
    Without name_each (a model's hundreds of tensors) the reason names the worst and counts the others.
    """
    judged = {name: verdict(check, dtype, traced, drift) for name, check in checks.items()}
    failing = [name for name, one in judged.items() if one.reason]
    nearest = max(judged, key=lambda name: _closeness(judged[name], checks[name]))
    if name_each or not failing:
        reason = "; ".join(f"grad {name}: {judged[name].reason}" for name in failing)
    else:
        reason = f"grad {nearest}: {judged[nearest].reason} ({len(failing)} of {len(checks)} gradients over their bounds)"
    return GradientVerdict(judged[nearest].max_abs_err, judged[nearest].tolerance, checks[nearest].mean_error,
                           checks[nearest].mean_tolerance, reason)


def _closeness(judged: Verdict, check: OracleCheck) -> float:
    """Return how near a checked tensor is to failing: its largest error-to-bound ratio (NaN counts as infinite)."""
    ratios = (judged.max_abs_err / judged.tolerance, check.mean_error / check.mean_tolerance)
    return max(float("inf") if r != r else r for r in ratios)  # NaN: the worst


def check_gradients(variant: av.Variant, case: Case, seed: int, prepared: av.Prepared, leaves: tuple[torch.Tensor, ...],
                    called: FirstCall) -> GradientVerdict:
    """Return the verdict on the gradients the timed closure's first call returned (a reduced eager copy's, when too large)."""
    if fits_oracle(case):
        grads = canonical_gradients(prepared, leaves, called.returned[1:])
        checks = gradient_checks(variant.family, case, *leaves, make_grad_out(case, seed), grads, **oracle_kwargs(case, prepared))
        # A compiled backward sums in orders no plain formulation predicts (slide-deformed under inductor reached
        # 0.62 of the relative float32 bound): traced rows get the dtype's fixed bound too, as a traced forward does.
        return gradient_verdict(checks, case.dtype, case.traced)
    checked = gradient_verdict(reduced_gradient_checks(variant, case, seed + 1), case.dtype, case.traced, called.grad_drift)
    drift = f", plus {case.runtime} vs eager drift {called.grad_drift:.3g} on the whole case" if case.traced else ""
    return replace(checked, note=f"gradients checked on an eager reduced copy (batch 1, heads 1){drift}")
