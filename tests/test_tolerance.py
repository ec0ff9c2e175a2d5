"""`ok` has teeth: planted bugs are `mismatch` in every dtype, correct variants `ok`.

The bugs live in a copy of Im2Col, wrapped as unregistered variants, and are judged by the
functions measure_case decides with (oracle_check, then verdict), once through measure_case
itself: these tests cannot pass while the harness judges differently.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import attention_variants as av
from attention_variants import registry
from attention_variants.case import Case
from attention_variants.layout import from_channels_first, to_channels_first
from bench.measure.case import measure_case
from bench.measure.correctness import MAX_FACTOR, OracleCheck, oracle_check, verdict
from bench.measure.settings import Settings
from bench.results.schema import TOLERANCE

# (batch, heads, height, width, head_dim, kernel): the three shapes where a wrong scale passed the
# old fixed bfloat16 bound, and a small odd non-square one.
SHAPES = [(1, 1, 28, 28, 64, 11), (2, 2, 14, 14, 32, 7), (1, 1, 56, 56, 32, 7), (1, 2, 9, 13, 8, 3)]
DTYPES = ["float32", "bfloat16", "float16", "float64"]
BUGS = ["wrong-scale", "neighbour-shifted", "border-row-inside-as-outside", "border-masked"]


def _im2col(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int, bug: str | None) -> torch.Tensor:
    """Im2Col as attention_variants/im2col.py computes it, with one planted bug (None: none)."""
    n, dim, height, width = q.shape
    pad, taps = kernel_size // 2, kernel_size * kernel_size
    if bug == "border-row-inside-as-outside":  # the padding swallows the image's first row and column
        k, v = k.clone(), v.clone()
        for t in (k, v):
            t[:, :, 0, :] = 0
            t[:, :, :, 0] = 0
    keys = F.unfold(k, kernel_size, padding=pad).view(n, dim, taps, height * width)
    values = F.unfold(v, kernel_size, padding=pad).view(n, dim, taps, height * width)
    if bug == "neighbour-shifted":  # the key at offset (0, +1) is read from (0, +2)
        keys = keys.clone()
        keys[:, :, taps // 2 + 1] = F.pad(k[..., 2:], (0, 2)).reshape(n, dim, height * width)
    scale = (dim + 1) ** -0.5 if bug == "wrong-scale" else dim**-0.5
    logits = ((q.reshape(n, dim, 1, height * width) * scale) * keys).sum(dim=1, keepdim=True)
    if bug == "border-masked":  # local-masked's rule where the family says zero keys
        inside = F.unfold(torch.ones(1, 1, height, width, dtype=q.dtype), kernel_size, padding=pad) > 0
        logits = logits.masked_fill(~inside.view(1, 1, taps, height * width).to(q.device), float("-inf"))
    return (logits.softmax(dim=2) * values).sum(dim=2).view(n, dim, height, width)


def planted(bug: str | None) -> av.Variant:
    """Return an unregistered local-zero-pad variant: Im2Col with the bug."""

    def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> av.Prepared:
        batch, heads = q.shape[:2]
        return av.Prepared(
            fn=lambda qn, kn, vn: _im2col(qn, kn, vn, case.kernel_size, bug),
            inputs=tuple(to_channels_first(t) for t in (q, k, v)),
            to_canonical=lambda out: from_channels_first(out, batch, heads),
        )

    return av.Variant(f"planted-{bug or 'none'}", "local-zero-pad", build)


def _case(name: str, shape: tuple[int, ...], dtype: str) -> Case:
    batch, heads, height, width, head_dim, kernel = shape
    return Case(variant=name, dtype=dtype, batch=batch, heads=heads, height=height, width=width, head_dim=head_dim,
                kernel_size=kernel)


def _judge(variant: av.Variant, case: Case, seed: int = 0):
    check = oracle_check(variant, case, seed)
    return check, verdict(check, case.dtype, case.traced)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b{}h{}-{}x{}-d{}-k{}".format(*s))
def test_planted_bugs_are_mismatch_and_the_correct_copy_is_ok(shape, dtype):
    case = _case("planted", shape, dtype)
    check, judged = _judge(planted(None), case)
    assert judged.reason == "", judged.reason
    assert check.error <= check.tolerance and check.mean_error <= check.mean_tolerance
    for bug in BUGS:
        check, judged = _judge(planted(bug), case)
        assert judged.reason, f"{bug} passed as ok in {dtype} at {shape}: {check}"
        assert "tolerance" in judged.reason


def test_the_old_fixed_bound_let_the_wrong_scale_pass():
    """Why the bound is relative: in bfloat16 the wrong scale is under 6e-2, the rule still sees it."""
    for shape in SHAPES[:3]:
        check, judged = _judge(planted("wrong-scale"), _case("planted", shape, "bfloat16"))
        assert check.error < TOLERANCE["bfloat16"]
        assert judged.reason


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("shape", [SHAPES[0], (1, 1, 56, 56, 64, 3)], ids=["28x28-d64-k11", "56x56-d64-k3"])
def test_wrong_scale_is_mismatch_whatever_the_seed(shape, seed):
    """The hardest planted bug (bfloat16, head_dim 64; k3 is its closest call): no lucky seed."""
    case = _case("planted", shape, "bfloat16")
    assert _judge(planted("wrong-scale"), case, seed)[1].reason
    assert not _judge(planted(None), case, seed)[1].reason


def test_measure_case_records_the_verdict_and_the_tolerance(monkeypatch):
    bug = planted("wrong-scale")
    monkeypatch.setitem(registry._REGISTRY, bug.name, bug)  # measure_case finds variants by name
    settings = Settings(threads=1, warmup_s=0.01, min_run_s=0.01, max_run_s=0.05, peaks={"cpu/bfloat16": [1.0, 1.0]})
    columns = measure_case(_case(bug.name, SHAPES[1], "bfloat16"), settings).to_columns()
    assert columns["status"] == "mismatch"
    assert columns["tolerance"] < TOLERANCE["bfloat16"] and columns["mean_abs_err"] > columns["mean_tolerance"]
    assert f"mean_tolerance {columns['mean_tolerance']:.3g}" in columns["reason"]


def _runnable(name: str, height: int, width: int, kernel: int, dtype: str) -> Case:
    case = Case(variant=name, dtype=dtype, batch=2, heads=2, height=height, width=width, head_dim=16, kernel_size=kernel)
    if av.get(name).supports(case):
        case = case.replace(height=3 * kernel, width=2 * kernel)  # e.g. a window must tile the image
    reason = av.get(name).supports(case)
    if reason:
        pytest.skip(reason)
    return case


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", av.names())
def test_every_variant_is_ok_on_its_family(name, dtype):
    """Registry-driven: a new variant is judged by the same rule (odd, non-square, k7; the sweeps measure more)."""
    case = _runnable(name, 15, 14, 7, dtype)
    assert _judge(av.get(name), case)[1].reason == ""


def _check(**errors: float) -> OracleCheck:
    values = dict(error=1e-3, mean_error=1e-4, plain_error=1e-3, plain_mean_error=1e-4, tolerance=4e-3, mean_tolerance=2e-4)
    return OracleCheck(**{**values, **errors})


def test_verdict_rules():
    assert verdict(_check(), "bfloat16").reason == ""
    assert verdict(_check(error=float("nan")), "bfloat16").reason.startswith("max_abs_err nan")
    assert "mean_abs_err" in verdict(_check(mean_error=float("nan")), "bfloat16").reason
    # compiled: the error adds the drift and meets the fixed bound; the eager mean still counts
    compiled = verdict(_check(), "bfloat16", traced=True, drift=0.01)
    assert compiled.max_abs_err == pytest.approx(0.011) and compiled.tolerance == TOLERANCE["bfloat16"] and not compiled.reason
    assert "fixed bound" in verdict(_check(), "bfloat16", traced=True, drift=0.1).reason
    assert verdict(_check(mean_error=1e-3), "bfloat16", traced=True).reason.startswith("mean_abs_err")
    assert f"{MAX_FACTOR:g} x the plain" in verdict(_check(error=5e-3), "bfloat16").reason
