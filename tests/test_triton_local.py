"""triton-local against the float64 local-zero-pad oracle, forward and gradients, in Triton's CPU interpreter.

TRITON_INTERPRET must be set before triton is first imported in a process, and other test
modules import attention_variants (hence triton) first: so the checks run in one fresh
subprocess (this file run as a script) with TRITON_INTERPRET=1, which reports their errors
as JSON. The interpreter is slow: the shapes are small, but cross tile edges (8x8 tiles),
are non-square and not multiples of the tile, and the kernel sizes reach the image size.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")

# (batch, heads, height, width, head_dim, kernel, dtype)
FLOAT32_CASES = [
    (1, 2, 5, 7, 16, 3, "float32"),
    (2, 2, 12, 9, 16, 7, "float32"),  # 2x2 tiles, kernel 7 of a 9-wide image
    (1, 2, 9, 12, 32, 5, "float32"),
    (1, 1, 7, 17, 24, 5, "float32"),  # three tiles across; head_dim padded to 32 inside the kernel
    (1, 2, 7, 5, 8, 5, "float32"),  # head_dim below tl.dot's 16
]
HALF_CASES = [
    (1, 2, 9, 12, 32, 5, "bfloat16"),
    (2, 2, 12, 7, 16, 7, "float16"),
    (1, 2, 9, 9, 16, 3, "bfloat16"),
]
# Half precision: the error may reach MAX_FACTOR times the plain formulation's (the oracle run in
# that dtype), the rule the harness applies to every row (bench/measure/correctness.py).
MAX_FACTOR = 4.0


def _errors(batch, heads, height, width, dim, kernel, dtype_name, seed=0, gain=1.0, device="cpu"):
    """Return max |error| of out, dq, dk, dv against float64, for triton-local and for the plain oracle in dtype."""
    from attention_variants import triton_local
    from attention_variants.reference import local_zero_pad

    dtype = getattr(torch, dtype_name)
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, heads, height, width, dim)
    q, k, v, upstream = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(4))
    q = q * gain
    exact_inputs = [t.clone().requires_grad_(True) for t in (q, k, v)]
    exact = local_zero_pad(*exact_inputs, kernel)
    wanted = [exact.detach(), *torch.autograd.grad(exact, exact_inputs, upstream)]
    leaves = [t.to(device, dtype).reshape(batch * heads, height, width, dim).requires_grad_(True) for t in (q, k, v)]
    out = triton_local.local_attention(*leaves, kernel)
    got = [out.cpu(), *(g.cpu() for g in torch.autograd.grad(out, leaves, upstream.to(device, dtype).reshape(out.shape)))]
    plain_inputs = [t.detach().to(dtype).requires_grad_(True) for t in (q, k, v)]
    plain = local_zero_pad(*plain_inputs, kernel)
    plain_got = [plain, *torch.autograd.grad(plain, plain_inputs, upstream.to(dtype))]
    error = lambda a, b: (a.detach().double().reshape(shape) - b).abs().max().item()  # noqa: E731
    return [error(a, b) for a, b in zip(got, wanted)], [error(a, b) for a, b in zip(plain_got, wanted)]


def _registry_case_error():
    """Return max |error| of the registered variant's Prepared path (layout included) on a CPU case."""
    import attention_variants as av
    from attention_variants.reference import oracle

    case = av.Case(variant="triton-local", device="cpu", batch=2, height=9, width=10, heads=2, head_dim=16, kernel_size=5)
    assert av.get("triton-local").supports(case) is None
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 9, 10, 16, generator=generator) for _ in range(3))
    prepared = av.get("triton-local").build(case, q, k, v)
    out = prepared.to_canonical(prepared.fn(*prepared.inputs))
    return (out.double() - oracle("local-zero-pad", q, k, v, 5)).abs().max().item()


def _harness_rows():
    """Return the status, reason and gradient columns measure_case gives triton-local's forward_backward rows."""
    from attention_variants.case import Case
    from bench.measure.case import measure_case
    from bench.measure.settings import Settings

    settings = Settings(threads=1, warmup_s=0.0, min_run_s=0.001, max_run_s=0.002,
                        peaks={f"cpu/{dtype}": [1.0, 1.0] for dtype in ("float32", "bfloat16")})
    rows = []
    for dtype in ("float32", "bfloat16"):
        case = Case(variant="triton-local", dtype=dtype, batch=1, heads=2, height=9, width=10, head_dim=16, kernel_size=5,
                    pass_name="forward_backward")
        columns = measure_case(case, settings).to_columns()
        rows.append({name: columns.get(name) for name in ("status", "reason", "grad_max_abs_err", "grad_tolerance")})
    return rows


@pytest.fixture(scope="module")
def interpreter_report() -> dict:
    """Run every interpreter check in one fresh interpreter-mode process (one torch and triton import, not one per
    test) and return its JSON report."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, __file__], cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_triton
@pytest.mark.slow
@pytest.mark.interpreter
def test_float32_forward_and_gradients_match_oracle(interpreter_report):
    report = interpreter_report["float32"]
    for case, (errors, _) in zip(FLOAT32_CASES, report["cases"]):
        out_error, *grad_errors = errors
        assert out_error < 2e-5, f"{case}: forward error {out_error:.3g}"
        assert max(grad_errors) < 1e-4, f"{case}: dq, dk, dv errors {grad_errors}"
    out_error, *grad_errors = report["huge_logits"][0]  # logits of order 1e3: the online softmax rescales
    assert out_error < 1e-4 and max(grad_errors) < 1e-3  # recomputed fp32 logits of 1e3 carry ~1e-4 absolute error
    assert report["registry"] < 2e-5
    for row in report["harness"]:  # the harness's own gradient check, as a sweep's forward_backward row gets it
        assert row["status"] == "ok" and 0 < row["grad_max_abs_err"] <= row["grad_tolerance"], row


@needs_triton
@pytest.mark.slow
@pytest.mark.interpreter
def test_half_precision_forward_and_gradients_within_plain_error(interpreter_report):
    report = interpreter_report["half"]
    for case, (errors, plain) in zip(HALF_CASES, report["cases"]):
        bounds = [MAX_FACTOR * p for p in plain]
        assert all(e <= b for e, b in zip(errors, bounds)), f"{case}: errors {errors} vs 4x plain {plain}"


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("case", [(2, 2, 13, 17, 32, 7, "float32"), (1, 3, 20, 23, 128, 13, "float32"),
                                  (2, 2, 30, 31, 64, 9, "bfloat16"), (2, 3, 11, 8, 8, 3, "float16")])
def test_cuda_forward_and_gradients_match_oracle(case):
    """The compiled kernels (no interpreter): float32 products must be IEEE, not TF32."""
    errors, plain = _errors(*case, device="cuda")
    if case[-1] == "float32":
        assert errors[0] < 2e-5 and max(errors[1:]) < 1e-4, f"{case}: errors {errors}"
    else:
        assert all(e <= MAX_FACTOR * p for e, p in zip(errors, plain)), f"{case}: errors {errors} vs 4x plain {plain}"


def test_cpu_without_interpreter_gives_the_reason(monkeypatch):
    from attention_variants import Case, triton_local

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    case = Case(variant="triton-local", device="cpu")
    expected = "triton-local runs on CUDA (on the CPU only under TRITON_INTERPRET=1, for tests)"
    assert triton_local.supports(case) == (expected if triton_local.HAS_TRITON else "triton is not installed")
    monkeypatch.setattr(triton_local, "HAS_TRITON", False)
    assert triton_local.supports(case) == "triton is not installed"


@needs_triton
def test_interpreter_case_limits(monkeypatch):
    from attention_variants import Case, triton_local

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    case = Case(variant="triton-local", device="cpu", head_dim=64, kernel_size=13)
    assert triton_local.supports(case) is None
    assert "head_dim up to 128" in triton_local.supports(case.replace(head_dim=256))
    assert "not float64" in triton_local.supports(case.replace(dtype="float64"))
    assert "odd kernel sizes 3..13" in triton_local.supports(case.replace(kernel_size=15))
    assert "the inductor runtime has nothing to add" in triton_local.supports(case.replace(runtime="inductor"))


def test_variant_module_imports_without_triton():
    code = ("import sys; sys.modules['triton'] = None; import attention_variants as av; "
            "print(av.get('triton-local').supports(av.Case(variant='triton-local', device='cuda')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "triton is not installed"


def _main() -> None:
    print(json.dumps({
        "float32": {"cases": [_errors(*case) for case in FLOAT32_CASES],
                    "huge_logits": _errors(1, 1, 6, 7, 16, 3, "float32", gain=200.0),
                    "registry": _registry_case_error(),
                    "harness": _harness_rows()},
        "half": {"cases": [_errors(*case) for case in HALF_CASES]},
    }))


if __name__ == "__main__":
    _main()
