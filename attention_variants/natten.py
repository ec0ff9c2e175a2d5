"""NATTEN's na2d (neighbourhood attention), with the backend NATTEN picks on the device.

`supports` asks NATTEN's own checks rather than restating them: the kernel-size and
kernel-vs-image checks of natten/utils/checks.py, then natten.backends.choose_backend; when no
backend fits, each backend's checker (natten/backends/configs/checks.py) says why. In
natten 0.21.7 that means kernel >= 2 and <= the image, and on the CPU (flex-fna, unfused)
float32/float16/bfloat16 with a power-of-two head_dim in 8..512.
"""

from __future__ import annotations

import warnings

import torch

from attention_variants.case import Case
from attention_variants.layout import from_heads_last, to_heads_last
from attention_variants.registry import Prepared, Variant, register

try:
    import natten as _natten
    from natten.backends import choose_backend as _choose_backend
    from natten.backends.configs import checks as _backend_checks
    from natten.utils.checks import check_all_args as _check_all_args
    from natten.utils.checks import check_args_against_input as _check_args_against_input

    HAS_NATTEN = True
    NATTEN_VERSION = _natten.__version__
except ImportError:
    HAS_NATTEN = False
    NATTEN_VERSION = ""


def supports(case: Case) -> str | None:
    """Return why NATTEN cannot run the case, if it cannot."""
    if not HAS_NATTEN:
        return "natten is not installed (pip install natten)"
    if case.device == "cpu" and case.needs_grad:
        return "natten's CPU backend (unfused FlexAttention) has no backward"
    if case.device == "cpu" and case.runtime == "inductor":  # export and onnxruntime are tried: their failure is the row
        return "natten does not compile FlexAttention on CPU"
    return natten_refusal(case)


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def natten_refusal(case: Case) -> str | None:
    """Return NATTEN's own reason to refuse the case's kernel size, image, head_dim and dtype, or None."""
    try:  # a zero-stride probe of the case's shape: NATTEN's checks read shapes, dtype and device only
        probe = torch.empty((), dtype=case.torch_dtype, device=case.device).expand(1, case.height, case.width, 1, case.head_dim)
    except (RuntimeError, AssertionError) as err:  # torch built without the device raises AssertionError
        return f"natten: no tensor on {case.device} here: {_first_line(err)}"
    try:  # the argument checks na2d runs first (natten/utils/checks.py)
        kernel_size, stride, dilation, is_causal = _check_all_args(2, case.kernel_size, 1, case.dilation, False)
        _check_args_against_input(probe, kernel_size=kernel_size, stride=stride, dilation=dilation, is_causal=is_causal)
    except ValueError as err:
        dilated = f" dilation {case.dilation}" if case.dilation != 1 else ""
        return f"natten rejects kernel {case.kernel_size}{dilated} on {case.height}x{case.width}: {_first_line(err)}"
    try:  # build() asks NATTEN for a backend the same way
        _choose_backend(probe, probe, probe, torch_compile=False)
    except NotImplementedError:
        return f"natten has no backend for head_dim {case.head_dim}, {case.dtype} on {case.device}: {_backend_refusals(probe)}"
    return None


def _backend_refusals(probe: torch.Tensor) -> str:
    """Return what each NATTEN backend that could serve the probe's device says against it."""
    # choose_backend's own error is generic; its checkers, asked to raise, say why.
    checkers = {"flex-fna": lambda q: _backend_checks.can_run_flex_attention(q, q, q, torch_compile=False, raise_error=True)}
    if probe.device.type == "cuda":  # on the CPU flex-fna is NATTEN's only backend
        checkers = {
            "blackwell-fna": lambda q: _backend_checks.can_run_cutlass_blackwell_fna(q, q, q, raise_error=True),
            "hopper-fna": lambda q: _backend_checks.can_run_cutlass_hopper_fna(q, q, q, raise_error=True),
            "cutlass-fna": lambda q: _backend_checks.can_run_cutlass_fna(q, q, q, raise_error=True),
            **checkers,
        }
    refusals = []
    for name, check in checkers.items():
        try:
            check(probe)
        except Exception as err:  # NATTEN raises ValueError, NotImplementedError or RuntimeError
            refusals.append(f"{name}: {_first_line(err)}")
    return "; ".join(refusals)


def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """Return na2d over heads-last (batch, H, W, heads, head_dim) inputs."""
    qn, kn, vn = to_heads_last(q), to_heads_last(k), to_heads_last(v)
    backend = _choose_backend(qn, kn, vn, torch_compile=False)

    def fn(query, key, value):
        with warnings.catch_warnings():
            # On CPU NATTEN runs FlexAttention eagerly and warns on every call that it is unfused.
            warnings.simplefilter("ignore")
            return _natten.na2d(query, key, value, case.kernel_size, dilation=case.dilation, backend=backend)

    return Prepared(fn=fn, inputs=(qn, kn, vn), to_canonical=from_heads_last, backend=backend)


register(Variant("natten", "neighborhood", build, supports, "natten.na2d, backend chosen by NATTEN", dilates=True))
