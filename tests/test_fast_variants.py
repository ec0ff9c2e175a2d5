"""The fast exact variants' own knobs, the compile axis, and the roofline columns.

Every registered variant is also checked against its family's oracle by tests/test_variants.py
(parametrised over the registry); these tests cover what that one cannot see: block shapes
that do not tile the image, chunking, compile rows, and the roofline arithmetic.
"""

import platform
import re
import subprocess

import pytest
import torch

from attention_variants import halo, local_fused, local_tiled, local_views
from attention_variants.case import Case
from attention_variants.reference import local_zero_pad
from bench.execution.rows import make_row
from bench.measure import roofline
from bench.measure.case import measure_case
from bench.measure.settings import Settings

TOLERANCE = {torch.float32: dict(atol=2e-5, rtol=2e-5), torch.bfloat16: dict(atol=6e-2, rtol=0)}


def _qkv(shape, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype) for _ in range(3)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("block", [(1, 4), (2, 3), (5, 7)])
@pytest.mark.parametrize("height,width,kernel", [(9, 13, 3), (11, 8, 5), (15, 14, 7)])
def test_halo_any_block_shape_matches_oracle(height, width, kernel, block, dtype):
    q, k, v = _qkv((2, 3, height, width, 8), dtype)
    flat = lambda t: t.reshape(6, height, width, 8)  # noqa: E731
    for chunk in (4, 6):  # a chunk that splits batch*heads unevenly, and no split
        out = halo.chunked(flat(q), flat(k), flat(v), kernel, block, chunk).view(2, 3, height, width, 8)
        torch.testing.assert_close(out.double(), local_zero_pad(q.double(), k.double(), v.double(), kernel), **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("height,width,kernel", [(9, 13, 3), (7, 12, 5), (13, 8, 7)])
def test_fused_chunks_match_oracle(height, width, kernel, dtype):
    q, k, v = _qkv((2, 3, height, width, 8), dtype)
    cf = lambda t: t.permute(0, 1, 4, 2, 3).reshape(6, 8, height, width)  # noqa: E731
    expected = local_zero_pad(q.double(), k.double(), v.double(), kernel)
    for chunk in (1, 4, 6):
        out = local_fused.chunked(cf(q), cf(k), cf(v), kernel, chunk).view(2, 3, 8, height, width).permute(0, 1, 3, 4, 2)
        torch.testing.assert_close(out.double(), expected, **TOLERANCE[dtype])


def test_fused_survives_huge_logits():
    """The online softmax rescales: logits far beyond exp's range still give the oracle's answer."""
    q, k, v = _qkv((1, 1, 6, 7, 4))
    q = q * 200  # logits of order 1e2..1e3: a naive exp overflows float32
    cf = lambda t: t.float().permute(0, 1, 4, 2, 3).reshape(1, 4, 6, 7)  # noqa: E731
    out = local_fused.online_local_attention(cf(q), cf(k), cf(v), 3).view(1, 1, 4, 6, 7).permute(0, 1, 3, 4, 2)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), local_zero_pad(q, k, v, 3), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("height,width,kernel", [(9, 13, 3), (12, 7, 5)])
@pytest.mark.slow
def test_views_compiled_form_matches_oracle(height, width, kernel):
    """Eager local-views is einsum (tests/test_variants.py); this checks the broadcast form inductor fuses."""
    torch._dynamo.reset()
    q, k, v = _qkv((2, 3, height, width, 8), torch.float32)
    flat = lambda t: t.reshape(6, height, width, 8)  # noqa: E731
    compiled = torch.compile(local_views.view_attention)
    out = compiled(flat(q), flat(k), flat(v), kernel).view(2, 3, height, width, 8)
    torch.testing.assert_close(out.double(), local_zero_pad(q.double(), k.double(), v.double(), kernel), **TOLERANCE[torch.float32])


needs_cc = pytest.mark.skipif(local_tiled.compiler() is None, reason="no C compiler")


@needs_cc
@pytest.mark.parametrize("heads,threads", [(3, 1), (3, 2), (1, 2), (1, 3), (2, 5)])  # fewer images than threads: row bands
@pytest.mark.parametrize("height,width,dim,kernel", [(9, 13, 8, 3), (7, 20, 5, 7), (12, 33, 16, 5), (19, 17, 3, 9)])
def test_tiled_kernel_matches_oracle(height, width, dim, kernel, heads, threads):
    """Odd rows (a phantom second row), widths that end in a partial tile, channels off the value blocks."""
    q, k, v = _qkv((1, heads, height, width, dim))
    cf = lambda t: t.float().permute(0, 1, 4, 2, 3).reshape(heads, dim, height, width).contiguous()  # noqa: E731
    out = local_tiled.tiled_attention(cf(q), cf(k), cf(v), kernel, threads).view(1, heads, dim, height, width).permute(0, 1, 3, 4, 2)
    torch.testing.assert_close(out.double(), local_zero_pad(q, k, v, kernel), **TOLERANCE[torch.float32])


@needs_cc
@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 targets")
@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64"])  # AVX2's intrinsics and SSE2's plain loops, not AVX-512's
def test_tiled_kernel_portable_path_matches_oracle(march):
    lib = local_tiled.compile_library(5, march)
    q, k, v = _qkv((2, 2, 11, 19, 5))
    cf = lambda t: t.float().permute(0, 1, 4, 2, 3).reshape(4, 5, 11, 19).contiguous()  # noqa: E731
    out = local_tiled.tiled_attention(cf(q), cf(k), cf(v), 5, 2, lib).view(2, 2, 5, 11, 19).permute(0, 1, 3, 4, 2)
    torch.testing.assert_close(out.double(), local_zero_pad(q, k, v, 5), **TOLERANCE[torch.float32])


def _tiled_and_oracle_gradients(shape, kernel, threads, lib=None, gain=1.0, dtype=torch.float32):
    """Return local-tiled's (in dtype) and the float64 oracle's (out, dq, dk, dv) in canonical layout, for one upstream
    gradient; the oracle gets the inputs as rounded to dtype."""
    batch, heads, height, width, dim = shape
    q, k, v = (t.to(dtype).double() for t in _qkv(shape, seed=3))
    grad = _qkv(shape, seed=4)[0].to(dtype).double()
    q = (q * gain).to(dtype).double()
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    expected = local_zero_pad(*leaves, kernel)
    expected_grads = torch.autograd.grad(expected, leaves, grad)
    cf = lambda t: t.to(dtype).permute(0, 1, 4, 2, 3).reshape(batch * heads, dim, height, width).contiguous()  # noqa: E731
    inputs = [cf(t).requires_grad_(True) for t in (q, k, v)]
    out = local_tiled.tiled_attention(*inputs, kernel, threads, lib)
    got_grads = torch.autograd.grad(out, inputs, cf(grad))
    canonical = lambda t: t.view(batch, heads, dim, height, width).permute(0, 1, 3, 4, 2).double()  # noqa: E731
    return [canonical(t) for t in (out, *got_grads)], [expected.detach(), *expected_grads]


@needs_cc
@pytest.mark.parametrize("shape,kernel,threads", [
    ((1, 3, 9, 13, 8), 3, 2), ((1, 1, 7, 20, 5), 7, 3), ((2, 1, 12, 33, 16), 5, 5), ((1, 3, 19, 17, 3), 9, 2),
    ((1, 1, 15, 14, 32), 11, 2), ((1, 2, 14, 23, 6), 13, 3), ((1, 1, 5, 6, 4), 13, 1),  # k past the image
])
def test_tiled_backward_matches_oracle(shape, kernel, threads):
    """dq, dk, dv at odd and non-square sizes, partial tiles, channels off the blocks, row bands, every odd k to 13."""
    got, expected = _tiled_and_oracle_gradients(shape, kernel, threads)
    for name, g, e in zip(("out", "dq", "dk", "dv"), got, expected):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4, msg=lambda m, name=name: f"{name}: {m}")


@needs_cc
@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 targets")
def test_tiled_backward_avx2_build_matches_oracle_with_huge_logits():
    """The AVX2 build's backward, and logits of order 1e3: P comes from the saved log-sum-exp, not exp of raw logits."""
    lib = local_tiled.compile_library(7, "x86-64-v3")
    for gain in (1.0, 300.0):
        got, expected = _tiled_and_oracle_gradients((2, 2, 11, 19, 5), 7, 2, lib, gain)
        tolerance = 1e-4 if gain == 1.0 else 2e-2  # float32 logits of 1e3 carry ~1e-4 absolute error, times q's 300
        for name, g, e in zip(("out", "dq", "dk", "dv"), got, expected):
            assert torch.isfinite(g).all(), name
            torch.testing.assert_close(g, e, atol=tolerance, rtol=1e-4, msg=lambda m, name=name: f"{name}: {m}")


# cooperlake: AVX-512 with BF16's dot products (vdpbf16ps), which the bfloat16 build uses for the logits and dP
BF16_MARCHES = ["native", "x86-64-v3", pytest.param("cooperlake", marks=pytest.mark.skipif(
    "avx512_bf16" not in local_tiled.machine_id().split(), reason="this CPU has no AVX-512 BF16"))
] if platform.machine() == "x86_64" else ["native"]


@needs_cc
@pytest.mark.parametrize("march", BF16_MARCHES)
@pytest.mark.parametrize("shape,kernel,threads", [((1, 3, 9, 13, 8), 3, 2), ((2, 1, 12, 21, 16), 7, 3), ((1, 2, 7, 6, 5), 13, 2)])
def test_tiled_bfloat16_is_as_close_as_float32_arithmetic_rounded_once(shape, kernel, threads, march):
    """bfloat16 in and out, float32 inside: out, dq, dk and dv within two bfloat16 roundings of their largest value
    from the float64 answer on the same bfloat16 inputs (measured: 1.4e-3 to 4.1e-3 of it; the oracle's own
    arithmetic in bfloat16 is 4.5e-3 to 2.5e-2 off). Odd head_dim 5: the last channel pair of the vdpbf16ps logits
    has one channel."""
    lib = local_tiled.compile_library(kernel, march, torch.bfloat16)
    got, expected = _tiled_and_oracle_gradients(shape, kernel, threads, lib, dtype=torch.bfloat16)
    for name, g, e in zip(("out", "dq", "dk", "dv"), got, expected):
        error = ((g - e).abs().max() / e.abs().max()).item()
        assert error <= 2**-7, f"{name}: {error:.3g} of its largest value"  # one bfloat16 rounding is 2**-8 at most


def _assembly(tmp_path, march: str, dtype: torch.dtype) -> str:
    """Return the assembly gcc makes of the kernel for kernel size 7, march and dtype (the library's flags)."""
    out = tmp_path / f"{march}-{str(dtype).removeprefix('torch.')}.s"
    flags = [f for f in local_tiled.flags(7, march, dtype) if f not in ("-shared", "-fPIC")]
    done = subprocess.run([local_tiled.compiler(), *flags, "-S", str(local_tiled.SOURCE), "-o", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out.read_text()


@needs_cc
@pytest.mark.skipif(platform.machine() != "x86_64", reason="reads x86-64 assembly")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_the_avx2_build_is_vector_code(tmp_path, dtype):
    """AVX2 is a first-class path: its intrinsics (logits, weighted values, dk and dv sums), unrolled over the
    offsets, give 8-float FMAs (gcc 12: 292 packed, 5 scalar: the Delta sums and the exp's tail; the plain loops
    they replaced gave 127, each between a load and a store of its accumulator)."""
    text = _assembly(tmp_path, "x86-64-v3", dtype)
    packed = len(re.findall(r"vfn?m(?:add|sub)\d+ps\s[^\n]*%ymm", text))
    scalar = len(re.findall(r"vfn?m(?:add|sub)\d+ss\s", text))
    assert "%zmm" not in text  # nothing of AVX-512 in an AVX2 build
    assert packed >= 200 and scalar <= packed / 20, (packed, scalar)


@needs_cc
@pytest.mark.skipif(platform.machine() != "x86_64", reason="reads x86-64 assembly")
def test_the_bfloat16_build_takes_bf16_dot_products_where_the_cpu_has_them(tmp_path):
    """On a CPU with AVX-512 BF16 (here compiled for one, cooperlake) the bfloat16 build's logits and dP are
    vdpbf16ps on channel pairs; the float32 build and an AVX-512 CPU without BF16 (skylake-avx512) have none."""
    bf16 = _assembly(tmp_path, "cooperlake", torch.bfloat16)
    assert len(re.findall(r"vdpbf16ps\s[^\n]*%zmm", bf16)) >= 14  # 2 rows x 7 offsets
    assert "vdpbf16ps" not in _assembly(tmp_path, "cooperlake", torch.float32)
    assert "vdpbf16ps" not in _assembly(tmp_path, "skylake-avx512", torch.bfloat16)


def test_tiled_kernel_without_a_working_compiler_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(local_tiled, "CACHE", tmp_path)
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    with pytest.raises(RuntimeError, match="local-tiled: false failed"):
        local_tiled.compile_library(3)
    assert [p.name for p in tmp_path.iterdir()] == [".build.lock"]  # no half-written library left in the cache
    monkeypatch.setattr(local_tiled, "compiler", lambda: None)
    assert local_tiled.supports(Case(variant="local-tiled")) == "no C compiler (set $CC, or install cc/gcc)"


@needs_cc
def test_tiled_kernel_reuses_its_scratch_across_shapes_and_survives_huge_logits():
    """The padded copies persist between calls: a new shape must re-zero their borders."""
    cf = lambda t: t.float().permute(0, 1, 4, 2, 3).flatten(0, 1).contiguous()  # noqa: E731
    for shape, gain in (((1, 2, 11, 21, 8), 1.0), ((1, 2, 6, 9, 8), 1.0), ((1, 2, 11, 21, 8), 300.0)):
        q, k, v = _qkv(shape)
        q = q * gain  # logits up to ~1e3: exp of the raw logits overflows float32
        out = local_tiled.tiled_attention(cf(q), cf(k), cf(v), 5, 2).view(shape[0], shape[1], shape[4], *shape[2:4]).permute(0, 1, 3, 4, 2)
        torch.testing.assert_close(out.double(), local_zero_pad(q, k, v, 5), atol=1e-4, rtol=1e-4)


def test_chunk_sizes_follow_the_cache_budget():
    small, large = Case(variant="local-fused", height=14, width=14), Case(variant="local-fused", height=112, width=112)
    assert local_fused.chunk_rows(small) > local_fused.chunk_rows(large) >= 1


def _measure(case, monkeypatch):
    monkeypatch.setattr(roofline, "MATMUL_SIZE", {"cpu": 128, "cuda": 128})  # calibration in ms, not s
    monkeypatch.setattr(roofline, "COPY_BYTES", {"cpu": 1 << 20, "cuda": 1 << 20})
    monkeypatch.setattr(roofline, "MIN_RUN_S", 0.01)
    roofline.matmul_gflop_per_s.cache_clear()
    roofline.copy_gb_per_s.cache_clear()
    settings = Settings(threads=torch.get_num_threads(), warmup_s=0.0, min_run_s=0.01, max_run_s=0.05)
    fingerprint = {"threads": settings.threads}  # the roofline's peaks are calibrated at this thread count
    return make_row(case, measure_case(case, settings), "run", fingerprint, peaks={})  # the one place derived columns are made


def test_eager_row_has_roofline_columns_and_no_compile_time(monkeypatch):
    row = _measure(Case(variant="local-halo", batch=1, height=9, width=11, heads=2, head_dim=8, kernel_size=3), monkeypatch)
    assert row["status"] == "ok", row["reason"]
    assert row["compile_ms"] is None
    assert row["peak_gflop_per_s"] > 0 and row["peak_gb_per_s"] > 0
    assert row["bytes_moved"] == 4 * 2 * 9 * 11 * 8 * 4  # q, k, v read, out written, float32
    assert row["roofline_fraction"] == pytest.approx(row["gflop_per_s"] / min(
        row["peak_gflop_per_s"], row["arithmetic_intensity"] * row["peak_gb_per_s"]))


def test_compile_failure_is_an_error_row_with_the_reason(monkeypatch):
    def broken_compile(fn, *args, **kwargs):
        def compiled(*inputs):
            raise RuntimeError("InductorError: no C++ compiler found")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    case = Case(variant="local-halo", batch=1, height=5, width=5, heads=1, head_dim=2, kernel_size=3, runtime="inductor")
    row = _measure(case, monkeypatch)
    assert row["status"] == "error"
    assert row["reason"] == "torch.compile failed: RuntimeError: InductorError: no C++ compiler found"
    eager = _measure(case.replace(runtime="eager"), monkeypatch)
    assert eager["status"] == "ok", eager["reason"]  # the same variant runs eagerly


@pytest.mark.slow
def test_compiled_row_records_compile_time(monkeypatch):
    torch._dynamo.reset()
    case = Case(variant="local-halo", batch=1, height=7, width=9, heads=1, head_dim=4, kernel_size=3, runtime="inductor")
    row = _measure(case, monkeypatch)
    assert row["status"] == "ok", row["reason"]
    assert row["compile_ms"] > 0
    assert row["max_abs_err"] < 1e-4


@pytest.mark.parametrize("intensity_flop_per_byte,bound", [(1.0, "memory"), (1000.0, "compute")])
def test_roofline_bound_follows_the_ridge_point(intensity_flop_per_byte, bound):
    case = Case(variant="im2col", batch=1, height=4, width=4, heads=1, head_dim=4, kernel_size=3)
    moved = roofline.bytes_moved(case)
    gflop = intensity_flop_per_byte * moved / 1e9
    peaks = roofline.Peaks(gflop_per_s=100.0, gb_per_s=10.0)  # ridge point at 10 FLOP/byte
    columns = roofline.roofline_columns(gflop, case, median_ms=1.0, found=peaks)
    assert columns["bound"] == bound
    attainable = min(100.0, intensity_flop_per_byte * 10.0)
    assert columns["roofline_fraction"] == pytest.approx(gflop / 1e-3 / attainable)


def test_backward_moves_three_times_the_bytes():
    case = Case(variant="im2col", batch=2, height=5, width=6, heads=3, head_dim=4, kernel_size=3, dtype="bfloat16")
    assert roofline.bytes_moved(case) == 4 * 2 * 3 * 5 * 6 * 4 * 2
    assert roofline.bytes_moved(case.replace(pass_name="forward_backward")) == 3 * roofline.bytes_moved(case)


@pytest.mark.slow
def test_each_compiled_case_gets_its_own_static_graph(monkeypatch):
    """A worker runs many cases: the second shape of a variant must not get a dynamic-shape graph."""
    seen = []

    def recording_backend(graph, example_inputs):
        seen.append(any(isinstance(size, torch.SymInt) for t in example_inputs if isinstance(t, torch.Tensor) for size in t.shape))
        return graph.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: real_compile(fn, backend=recording_backend, **kwargs))
    for size in (5, 6, 7):
        case = Case(variant="local-views", batch=1, height=size, width=size, heads=1, head_dim=4, kernel_size=3, runtime="inductor")
        row = _measure(case, monkeypatch)
        assert row["status"] == "ok", row["reason"]
    assert seen == [False, False, False]  # one static graph per case


@pytest.mark.slow
def test_compiled_backward_with_wrong_gradients_is_a_mismatch(monkeypatch):
    """The gradient check compares the compiled closure's own gradients with the float64 oracle's (eager's are right)."""

    class DoubledGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.clone()

        @staticmethod
        def backward(ctx, grad):
            return 2 * grad

    def miscompile(fn, **kwargs):
        return lambda *inputs: fn(*(DoubledGradient.apply(t) for t in inputs))

    monkeypatch.setattr(torch, "compile", miscompile)
    case = Case(variant="local-halo", batch=1, height=6, width=7, heads=1, head_dim=4, kernel_size=3, runtime="inductor",
                pass_name="forward_backward")
    row = _measure(case, monkeypatch)
    assert row["status"] == "mismatch"
    assert all(f"grad {name}: max_abs_err" in row["reason"] for name in "qkv")
    assert row["grad_max_abs_err"] > row["grad_tolerance"] and row["max_abs_err"] <= row["tolerance"]
    assert _measure(case.replace(runtime="eager"), monkeypatch)["status"] == "ok"
