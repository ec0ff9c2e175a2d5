"""Every registered variant against the float64 oracle of its semantics family."""

import pytest
import torch

import attention_variants as av
from attention_variants import slide
from attention_variants.case import Case
from attention_variants.reference import ORACLES, local_deformed, local_masked, local_zero_pad, neighborhood, oracle

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]
SHAPES = [(9, 13, 3), (11, 8, 5), (15, 14, 7)]  # odd and non-square (height, width, kernel)
TOLERANCE = {torch.float32: dict(atol=2e-5, rtol=2e-5), torch.bfloat16: dict(atol=6e-2, rtol=0)}


def _runnable_case(name: str, height: int, width: int, kernel: int, device: str, dtype: str) -> Case:
    case = Case(variant=name, device=device, dtype=dtype, batch=2, height=height, width=width, heads=3, head_dim=8, kernel_size=kernel)
    if av.get(name).supports(case):
        # e.g. a window must tile the image: same kernel, smallest odd-by-even multiple
        case = case.replace(height=3 * kernel, width=2 * kernel)
    reason = av.get(name).supports(case)
    if reason:
        pytest.skip(reason)
    return case


def _inputs(case: Case, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    shape = (case.batch, case.heads, case.height, case.width, case.head_dim)
    return [torch.randn(shape, generator=generator).to(case.device, case.torch_dtype) for _ in range(3)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("height,width,kernel", SHAPES)
@pytest.mark.parametrize("name", av.names())
def test_variant_matches_family_oracle(name, height, width, kernel, dtype, device):
    dtype_name = str(dtype).removeprefix("torch.")
    case = _runnable_case(name, height, width, kernel, device, dtype_name)
    q, k, v = _inputs(case)
    prepared = av.get(name).build(case, q, k, v)
    out = prepared.to_canonical(prepared.fn(*prepared.inputs))
    assert out.shape == q.shape and out.dtype == dtype
    expected = oracle(av.get(name).family, q, k, v, kernel, **prepared.oracle_kwargs)
    torch.testing.assert_close(out.double().cpu(), expected, **TOLERANCE[dtype])


DILATED_SHAPES = [(13, 11, 3, 2), (15, 14, 5, 2), (14, 13, 3, 3)]  # (height, width, kernel, dilation); k*d <= side


@pytest.mark.parametrize("height,width,kernel,dilation", DILATED_SHAPES)
@pytest.mark.parametrize("name", av.names())
def test_dilated_variant_matches_dilated_oracle_or_says_why_not(name, height, width, kernel, dilation):
    variant = av.get(name)
    case = Case(variant=name, batch=2, height=height, width=width, heads=3, head_dim=8, kernel_size=kernel, dilation=dilation)
    reason = variant.supports(case)
    if reason:
        assert variant.dilates or "dilation" in reason, reason  # a variant without dilation must say so
        pytest.skip(reason)
    q, k, v = _inputs(case)
    prepared = variant.build(case, q, k, v)
    out = prepared.to_canonical(prepared.fn(*prepared.inputs))
    expected = oracle(variant.family, q, k, v, kernel, dilation=dilation, **prepared.oracle_kwargs)
    torch.testing.assert_close(out.double(), expected, **TOLERANCE[torch.float32])
    undilated = oracle(variant.family, q, k, v, kernel, **prepared.oracle_kwargs)
    assert (out.double() - undilated).abs().max() > 1e-3  # dilation was not ignored


@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_slide_equals_im2col(kernel):
    case = Case(variant="slide", batch=2, height=13, width=10, heads=2, head_dim=4, kernel_size=kernel)
    q, k, v = _inputs(case)
    outs = []
    for name in ("im2col", "slide"):
        prepared = av.get(name).build(case.replace(variant=name), q, k, v)
        outs.append(prepared.to_canonical(prepared.fn(*prepared.inputs)))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)


def test_local_families_differ_only_on_border_frame():
    kernel, r = 5, 2
    q, k, v = (torch.randn(1, 2, 12, 9, 4, dtype=torch.float64) for _ in range(3))
    zero_pad, masked, natten_like = (f(q, k, v, kernel) for f in (local_zero_pad, local_masked, neighborhood))
    interior = (slice(None), slice(None), slice(r, -r), slice(r, -r))
    for other in (masked, natten_like):
        torch.testing.assert_close(zero_pad[interior], other[interior])
        frame = (zero_pad - other).abs().amax(dim=(0, 1, 4))
        frame[r:-r, r:-r] = 0
        assert (frame[[0, -1], :] > 1e-6).all() and (frame[:, [0, -1]] > 1e-6).all()


def test_zero_pad_oracle_against_plain_loops():
    """The oracle itself, against the definition written as scalar Python loops."""
    kernel, r = 3, 1
    q, k, v = (torch.randn(1, 1, 3, 4, 2, dtype=torch.float64) for _ in range(3))
    expected = torch.zeros_like(q)
    for i in range(3):
        for j in range(4):
            logits, values = [], []
            for di in range(-r, r + 1):
                for dj in range(-r, r + 1):
                    inside = 0 <= i + di < 3 and 0 <= j + dj < 4
                    key = k[0, 0, i + di, j + dj] if inside else torch.zeros(2, dtype=torch.float64)
                    values.append(v[0, 0, i + di, j + dj] if inside else torch.zeros(2, dtype=torch.float64))
                    logits.append((q[0, 0, i, j] * key).sum() / 2**0.5)
            weights = torch.stack(logits).softmax(0)
            expected[0, 0, i, j] = (weights[:, None] * torch.stack(values)).sum(0)
    torch.testing.assert_close(local_zero_pad(q, k, v, kernel), expected)


def test_deformed_merge_equals_two_branch_sum():
    kernel, head_dim = 5, 4
    x = torch.randn(6, head_dim, 9, 11, dtype=torch.float64)
    weight, bias = slide.deformed_kernels(kernel, head_dim)
    one_hot = slide.one_hot_kernels(kernel, head_dim, torch.float64, "cpu")
    two_branch = slide.shift(x, one_hot, None, kernel) + slide.shift(x, weight.double(), bias.double(), kernel)
    merged = slide.shift(x, one_hot + weight.double(), bias.double(), kernel)
    torch.testing.assert_close(merged, two_branch)
    assert (two_branch - slide.shift(x, one_hot, None, kernel)).abs().max() > 0.01  # the learned branch matters


def test_deformed_oracle_reduces_to_zero_pad_without_learned_kernel():
    q, k, v = (torch.randn(2, 2, 7, 6, 3, dtype=torch.float64) for _ in range(3))
    taps = 9
    zero = local_deformed(q, k, v, 3, torch.zeros(3, taps, taps), torch.zeros(3, taps))
    torch.testing.assert_close(zero, local_zero_pad(q, k, v, 3))


@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("name", av.names())
def test_variant_gradients_match_oracle(name, dilation):
    case = _runnable_case(name, 9, 14, 3, "cpu", "float32").replace(pass_name="forward_backward", dilation=dilation)
    reason = av.get(name).supports(case)
    if reason:
        pytest.skip(reason)
    inputs = [t.double().requires_grad_(True) for t in _inputs(case)]
    weights = torch.randn(inputs[0].shape, dtype=torch.float64)
    leaves = [t.detach().float().requires_grad_(True) for t in inputs]
    prepared = av.get(name).build(case, *leaves)  # layout conversion is differentiable
    out = prepared.to_canonical(prepared.fn(*prepared.inputs))
    grads = torch.autograd.grad((out.double() * weights).sum(), leaves)
    # oracle() detaches its inputs; call the family's function to keep the float64 graph
    expected_out = ORACLES[av.get(name).family](*inputs, case.kernel_size, **{
        key: value.double() if isinstance(value, torch.Tensor) else value for key, value in prepared.oracle_kwargs.items()},
        **({"dilation": dilation} if dilation != 1 else {}))
    expected = torch.autograd.grad((expected_out * weights).sum(), inputs)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-4)
