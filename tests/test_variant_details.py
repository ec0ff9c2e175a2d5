"""Details of single variants and oracles that the registry-wide tests cannot see.

The layout helpers, local-tiled's input checks and explicit thread count, local-fused's float32
accumulation in half precision, NATTEN's own limits as skip reasons, and the shifted-window
oracle against official Swin (additive -100 mask, shift 0 when the image is not larger than
the window).
"""

import pytest
import torch

import attention_variants as av
from attention_variants import layout, local_tiled, reference, window
from attention_variants.case import Case
from attention_variants.reference import local_zero_pad


def _qkv(shape, dtype=torch.float64, seed=0, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(shape, generator=generator, dtype=torch.float64) * scale).to(dtype) for _ in range(3)]


def _run(name: str, case: Case, q, k, v) -> torch.Tensor:
    prepared = av.get(name).build(case, q, k, v)
    return prepared.to_canonical(prepared.fn(*prepared.inputs))


# --- layout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", [
    (layout.to_channels_first, lambda out, b, h: layout.from_channels_first(out, b, h), (6, 4, 5, 7)),
    (layout.to_channels_last, lambda out, b, h: layout.from_channels_last(out, b, h), (6, 5, 7, 4)),
    (layout.to_heads_last, lambda out, b, h: layout.from_heads_last(out), (2, 5, 7, 3, 4)),
], ids=["channels-first", "channels-last", "heads-last"])
def test_layout_pairs_round_trip(pair):
    to_native, back, native_shape = pair
    x = torch.randn(2, 3, 5, 7, 4)
    native = to_native(x)
    assert native.shape == native_shape and native.is_contiguous()
    assert torch.equal(back(native, 2, 3), x)


def test_channels_first_puts_head_dim_before_pixels():
    x = torch.randn(2, 3, 5, 7, 4)
    assert torch.equal(layout.to_channels_first(x)[1 * 3 + 2, :, 4, 6], x[1, 2, 4, 6])


# --- local-tiled ------------------------------------------------------------------------------

needs_cc = pytest.mark.skipif(local_tiled.compiler() is None, reason="no C compiler")


def _channels_first(shape, dtype=torch.float32):
    return [layout.to_channels_first(t).to(dtype) for t in _qkv(shape)]


@needs_cc
def test_tiled_rejects_a_strided_view():
    q, k, v = _channels_first((1, 2, 6, 6, 8))
    with pytest.raises(ValueError, match="k is not contiguous"):
        local_tiled.tiled_attention(q, k.transpose(2, 3), v, 3, 1)
    with pytest.raises(ValueError, match="q is not contiguous"):
        local_tiled.tiled_attention(q[:, :, :, ::2], k[:, :, :, ::2].contiguous(), v[:, :, :, ::2].contiguous(), 3, 1)


@needs_cc
def test_tiled_rejects_float64_mixed_dtypes_and_a_library_of_another_dtype():
    q, k, v = _channels_first((1, 2, 6, 7, 8), torch.float64)
    with pytest.raises(ValueError, match="q is torch.float64, the kernel reads float32 or bfloat16 only"):
        local_tiled.tiled_attention(q, k, v, 3, 1)
    q, k, v = _channels_first((1, 2, 6, 7, 8))
    with pytest.raises(ValueError, match="v is torch.bfloat16, q is torch.float32: they must be equal"):
        local_tiled.tiled_attention(q, k, v.bfloat16(), 3, 1)
    with pytest.raises(ValueError, match="the library given reads torch.float32, the inputs are torch.bfloat16"):
        local_tiled.tiled_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), 3, 1, local_tiled.library(3))


@needs_cc
def test_tiled_rejects_mismatched_shapes_and_other_ranks():
    q, k, v = _channels_first((1, 2, 6, 7, 8))
    with pytest.raises(ValueError, match=r"k has shape \(2, 8, 6, 6\), q has \(2, 8, 6, 7\)"):
        local_tiled.tiled_attention(q, k[..., :6].contiguous(), v, 3, 1)
    with pytest.raises(ValueError, match="v has shape"):
        local_tiled.tiled_attention(q, k, v[:1], 3, 1)
    with pytest.raises(ValueError, match="must be 4-D"):
        local_tiled.tiled_attention(q[None], k[None], v[None], 3, 1)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        local_tiled.tiled_attention(q, k, v, 3, 0)


@needs_cc
def test_tiled_thread_count_is_explicit_and_changes_nothing():
    q, k, v = _qkv((1, 2, 9, 13, 8))
    cf = [layout.to_channels_first(t).float() for t in (q, k, v)]
    one, three = (local_tiled.tiled_attention(*cf, 5, threads) for threads in (1, 3))
    torch.testing.assert_close(one, three, atol=1e-6, rtol=1e-6)  # 3 threads split 2 images into row bands
    torch.testing.assert_close(layout.from_channels_first(three, 1, 2).double(), local_zero_pad(q, k, v, 5), atol=2e-5, rtol=2e-5)


@needs_cc
def test_tiled_build_fixes_the_thread_count_and_records_it(monkeypatch):
    case = Case(variant="local-tiled", batch=1, height=6, width=7, heads=2, head_dim=8, kernel_size=3)
    q, k, v = _qkv((1, 2, 6, 7, 8), torch.float32)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    prepared = av.get("local-tiled").build(case, q, k, v)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # a later change must not reach the closure
    used, real = [], local_tiled.tiled_attention
    monkeypatch.setattr(local_tiled, "tiled_attention", lambda *args: used.append(args[4]) or real(*args))
    out = prepared.to_canonical(prepared.fn(*prepared.inputs))
    assert used == [3] and prepared.backend.endswith("3 OpenMP threads")
    torch.testing.assert_close(out.double(), local_zero_pad(q.double(), k.double(), v.double(), 3), atol=2e-5, rtol=2e-5)


# --- local-fused in half precision ------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("shape,kernel", [((2, 1, 28, 28, 64), 9), ((1, 2, 13, 17, 32), 5)])
def test_fused_half_precision_error_is_close_to_im2col(shape, kernel, dtype):
    """The online softmax keeps its running max, sum and accumulator in float32 (in half precision it had 5-10x im2col's error)."""
    batch, heads, height, width, dim = shape
    case = Case(variant="local-fused", dtype=dtype, batch=batch, height=height, width=width, heads=heads, head_dim=dim, kernel_size=kernel)
    q, k, v = _qkv(shape, case.torch_dtype)
    expected = local_zero_pad(q.double(), k.double(), v.double(), kernel)
    errors = {}
    for name in ("im2col", "local-fused"):
        out = _run(name, case.replace(variant=name), q, k, v)
        assert out.dtype == case.torch_dtype
        errors[name] = (out.double() - expected).abs().max().item()
    assert errors["local-fused"] <= 2 * errors["im2col"], errors


# --- natten: NATTEN's own limits become skip reasons -------------------------------------------

needs_natten = pytest.mark.skipif(not av.natten.HAS_NATTEN, reason="natten is not installed")


@needs_natten
@pytest.mark.parametrize("height,width", [(5, 6), (3, 3)])  # 3x3 with kernel 3: NATTEN's self-attention path
@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("head_dim", [1, 2, 3, 8, 12, 32, 48, 64, 100, 128, 256])
def test_natten_supports_says_no_exactly_when_natten_raises(head_dim, kernel, height, width):
    case = Case(variant="natten", batch=1, height=height, width=width, heads=1, head_dim=head_dim, kernel_size=kernel)
    reason = av.get("natten").supports(case)
    try:
        _run("natten", case, *_qkv((1, 1, height, width, head_dim), torch.float32))
        raised = None
    except (ValueError, NotImplementedError, RuntimeError) as err:
        raised = err
    assert (reason is None) == (raised is None), (reason, raised)


@needs_natten
def test_natten_reasons_quote_natten():
    supports = av.get("natten").supports
    assert "all >= 2" in supports(Case(variant="natten", height=5, width=6, head_dim=8, kernel_size=1))
    assert "cannot be larger than input size" in supports(Case(variant="natten", height=5, width=6, head_dim=8, kernel_size=7))
    no_backend = supports(Case(variant="natten", height=5, width=6, head_dim=12, kernel_size=3))
    assert no_backend.startswith("natten has no backend for head_dim 12, float32 on cpu: flex-fna: ")
    assert "8 <= head_dim <= 512 and only powers of two" in no_backend
    assert "FP32, FP16, and BF16" in supports(Case(variant="natten", dtype="float64", head_dim=8, kernel_size=3))


# --- window-shifted: the oracle is official Swin's SW-MSA --------------------------------------


def _swin_sw_msa_loops(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: int) -> torch.Tensor:
    """Swin's SW-MSA for one head (H, W, D), from its definition: roll, windows, -100 mask, roll back."""
    height, width, dim = q.shape
    s = w // 2
    source = {(r, c): ((r + s) % height, (c + s) % width) for r in range(height) for c in range(width)}  # roll by -s

    def region(r, c):  # Swin's img_mask slices (0, -w), (-w, -s), (-s, None) of the rolled frame, per axis
        return tuple(0 if i < length - w else 1 if i < length - s else 2 for i, length in ((r, height), (c, width)))

    out = torch.zeros_like(q)
    for query in source:
        window_keys = [key for key in source if (key[0] // w, key[1] // w) == (query[0] // w, query[1] // w)]
        logits = torch.stack([(q[source[query]] * k[source[key]]).sum() * dim**-0.5
                              + (0.0 if region(*key) == region(*query) else -100.0) for key in window_keys])
        values = torch.stack([v[source[key]] for key in window_keys])
        out[source[query]] = (logits.softmax(0)[:, None] * values).sum(0)  # rolling back puts it where it came from
    return out


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_shifted_window_oracle_is_swin_by_scalar_loops(scale):
    q, k, v = _qkv((1, 2, 6, 6, 4), scale=scale)
    got = reference.window_shifted(q, k, v, 3)
    for head in range(2):
        expected = _swin_sw_msa_loops(q[0, head], k[0, head], v[0, head], 3)
        torch.testing.assert_close(got[0, head], expected, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-10), ("float32", 2e-3)])
@pytest.mark.parametrize("height,width,w", [(14, 14, 7), (6, 9, 3), (10, 15, 5)])
def test_shifted_window_variant_matches_oracle_at_large_logits(height, width, w, dtype, tolerance):
    """At 10x inputs the -100 mask no longer zeroes glued keys: -inf in the oracle was off by ~43."""
    case = Case(variant="window-shifted", dtype=dtype, batch=2, height=height, width=width, heads=2, head_dim=8, kernel_size=w)
    q, k, v = _qkv((2, 2, height, width, 8), case.torch_dtype, scale=10.0)
    out = _run("window-shifted", case, q, k, v)
    torch.testing.assert_close(out.double(), reference.oracle("window-shifted", q, k, v, w), atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("height,width", [(7, 7), (7, 14)])
def test_no_shift_when_the_image_is_not_larger_than_the_window(height, width):
    """Official Swin and timm: min(H, W) <= window -> shift 0 (and window min(H, W)), i.e. plain W-MSA."""
    case = Case(variant="window-shifted", batch=1, height=height, width=width, heads=2, head_dim=8, kernel_size=7)
    q, k, v = _qkv((1, 2, height, width, 8), torch.float64, scale=10.0)
    plain = reference.window(q, k, v, 7)
    torch.testing.assert_close(reference.window_shifted(q, k, v, 7), plain)
    torch.testing.assert_close(_run("window-shifted", case.replace(dtype="float64"), q, k, v), plain)
    assert window.swin_shift(height, width, 7) == 0 and window.swin_shift(height + 1, width + 1, 7) == 3
