"""`ok` on a forward_backward row means the gradients are right: planted backward bugs are `mismatch`.

The bugs sit in the backward of a custom torch.autograd.Function whose forward is exact Im2Col,
as a kernel engineer's hand-written backward would. They are judged through measure_case, the
function every sweep row comes from, so these tests cannot pass while the harness judges otherwise.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import attention_variants as av
import run_bench
from attention_variants import registry
from attention_variants.case import Case
from attention_variants.im2col import build as im2col_build
from bench.cli.console import summary_table
from bench.measure import gradients
from bench.measure.case import measure_case
from bench.measure.settings import Settings
from bench.models import configs
from bench.models.backbone import Config
from bench.models.measure import ModelCase, measure_model
from synthetic_results import row as make_row
from synthetic_results import write_csv

SETTINGS = Settings(threads=1, warmup_s=0.0, min_run_s=0.001, max_run_s=0.002,
                    peaks={f"cpu/{dtype}": [1.0, 1.0] for dtype in ("float32", "bfloat16", "float16", "float64")})
# (what the backward does wrong, to which input)
BUGS = [("scaled-1.5", "k"), ("scaled-1.1", "v"), ("border-row-zeroed", "q")]
DTYPES = ["float32", "bfloat16", "float16"]


def _wrong(grad: torch.Tensor, bug: str) -> torch.Tensor:
    if bug == "scaled-1.5":
        return grad * 1.5
    if bug == "scaled-1.1":
        return grad * 1.1
    grad = grad.clone()  # native layout (batch*heads, head_dim, H, W): the image's first row
    grad[:, :, 0, :] = 0
    return grad


def planted(bug: str | None, wrong_input: str = "k") -> av.Variant:
    """Return an unregistered local-zero-pad variant: exact Im2Col forward, a backward with the bug (None: none)."""
    position = "qkv".index(wrong_input)

    class Attention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, fn):
            ctx.save_for_backward(q, k, v)
            ctx.fn = fn
            return fn(q, k, v)

        @staticmethod
        def backward(ctx, grad_out):
            inputs = [t.detach().requires_grad_(True) for t in ctx.saved_tensors]
            with torch.enable_grad():
                grads = list(torch.autograd.grad(ctx.fn(*inputs), inputs, grad_out))
            if bug:
                grads[position] = _wrong(grads[position], bug)
            return (*grads, None)

    def build(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> av.Prepared:
        exact = im2col_build(case, q, k, v)
        return av.Prepared(lambda qn, kn, vn: Attention.apply(qn, kn, vn, exact.fn), exact.inputs, exact.to_canonical)

    return av.Variant(f"planted-grad-{bug or 'none'}-{wrong_input}", "local-zero-pad", build)


def _measure(monkeypatch, variant: av.Variant, **shape: object) -> dict[str, object]:
    monkeypatch.setitem(registry._REGISTRY, variant.name, variant)  # measure_case finds variants by name
    case = Case(variant=variant.name, **{"batch": 1, "heads": 2, "height": 11, "width": 9, "head_dim": 16, "kernel_size": 5,
                                 "pass_name": "forward_backward", **shape})
    return measure_case(case, SETTINGS).to_columns()


@pytest.mark.parametrize("dtype", DTYPES)
def test_planted_gradient_bugs_are_mismatch_and_the_exact_backward_is_ok(monkeypatch, dtype):
    exact = _measure(monkeypatch, planted(None), dtype=dtype)
    assert exact["status"] == "ok", exact["reason"]
    assert 0 < exact["grad_max_abs_err"] <= exact["grad_tolerance"]
    assert exact["grad_mean_abs_err"] <= exact["grad_mean_tolerance"]
    assert exact["max_abs_err"] <= exact["tolerance"]  # the forward is exact: only the gradients can fail
    for bug, wrong_input in BUGS:
        columns = _measure(monkeypatch, planted(bug, wrong_input), dtype=dtype)
        assert columns["status"] == "mismatch", f"{bug} of d{wrong_input} passed in {dtype}: {columns}"
        assert columns["reason"].startswith(f"grad {wrong_input}: "), columns["reason"]
        assert "tolerance" in columns["reason"] and columns["max_abs_err"] <= columns["tolerance"]
        assert ("grad q:" in columns["reason"]) == (wrong_input == "q")  # only the wrong input is named


def test_the_forward_check_alone_called_the_planted_bug_ok(monkeypatch):
    """Why the gradients are checked: the wrong backward's forward_backward row was `ok` on the output check."""
    columns = _measure(monkeypatch, planted("scaled-1.5", "k"))
    assert columns["max_abs_err"] <= columns["tolerance"] and columns["mean_abs_err"] <= columns["mean_tolerance"]
    assert columns["status"] == "mismatch" and columns["grad_max_abs_err"] > columns["grad_tolerance"]


def test_forward_rows_leave_the_gradient_columns_empty(monkeypatch):
    columns = _measure(monkeypatch, planted("scaled-1.5"), pass_name="forward")
    assert columns["status"] == "ok" and columns["grad_max_abs_err"] is None


def test_a_case_too_large_for_the_oracle_is_checked_on_a_reduced_copy(monkeypatch):
    monkeypatch.setattr(gradients, "ORACLE_ELEMENT_BUDGET", 100)
    columns = _measure(monkeypatch, planted("scaled-1.1", "v"), batch=2)
    assert columns["status"] == "mismatch" and columns["reason"].startswith("grad v: ")
    assert "gradients checked on an eager reduced copy (batch 1, heads 1)" in columns["reason"]
    assert _measure(monkeypatch, planted(None), batch=2)["status"] == "ok"


def test_inputs_built_outside_autograd_are_an_error_that_says_so(monkeypatch):
    def build(case, q, k, v):
        with torch.no_grad():
            return im2col_build(case, q, k, v)

    columns = _measure(monkeypatch, av.Variant("detached-inputs", "local-zero-pad", build))
    assert columns["status"] == "error" and "not differentiable functions of q, k, v" in columns["reason"]


def _runnable(name: str, height: int, width: int, kernel: int, dtype: str, dilation: int = 1) -> Case:
    case = Case(variant=name, dtype=dtype, batch=2, heads=2, height=height, width=width, head_dim=8, kernel_size=kernel,
                dilation=dilation, pass_name="forward_backward")
    if av.get(name).supports(case) and dilation == 1:
        case = case.replace(height=3 * kernel, width=2 * kernel)  # e.g. a window must tile the image
    reason = av.get(name).supports(case)
    if reason:
        pytest.skip(reason)
    return case


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("height,width,kernel,dilation", [(9, 13, 3, 1), (11, 8, 5, 1), (15, 14, 7, 1), (13, 11, 3, 2)])
@pytest.mark.parametrize("name", av.names())
def test_every_variant_has_right_gradients(name, height, width, kernel, dilation, dtype):
    """Registry-driven: no registered variant is a false `mismatch` in forward_backward (odd sizes, k 3-7, dilation)."""
    columns = measure_case(_runnable(name, height, width, kernel, dtype, dilation), SETTINGS).to_columns()
    assert columns["status"] == "ok", columns["reason"]
    assert columns["grad_max_abs_err"] <= columns["grad_tolerance"]


@pytest.mark.parametrize("bug,wrong_input,dtype", [(None, "k", "float32"), ("scaled-1.1", "v", "bfloat16")])
def test_a_models_training_step_checks_every_gradient_against_its_float64_oracle_model(monkeypatch, bug, wrong_input, dtype):
    """The planted backward in stages 1-2 of the Slide-Swin layout: the model row names the worst gradient."""
    variant = planted(bug, wrong_input)
    monkeypatch.setitem(registry._REGISTRY, variant.name, variant)
    monkeypatch.setitem(configs.CONFIGS, variant.name, Config(variant.name, configs.slide_layout(variant.name), ""))
    row = measure_model(ModelCase(variant.name, resolution=32, dtype=dtype, pass_name="forward_backward"), SETTINGS).to_columns()
    assert row["max_abs_err"] <= row["tolerance"]  # the forward is exact
    if bug is None:
        assert row["status"] == "ok" and 0 < row["grad_max_abs_err"] <= row["grad_tolerance"], row["reason"]
    else:
        assert row["status"] == "mismatch" and row["grad_max_abs_err"] > row["grad_tolerance"]
        assert row["reason"].startswith("grad layers.") and "gradients over their bounds" in row["reason"]


def test_a_forward_only_kernel_in_a_training_step_is_skipped_not_cut_out_of_the_gradient(monkeypatch):
    """A kernel without a backward (natten's on CPU) would otherwise train a model without attention gradients."""
    forward_only = av.Variant("forward-only", "local-zero-pad", im2col_build,
                              lambda case: "forward only (no backward kernel)" if case.needs_grad else None)
    monkeypatch.setitem(registry._REGISTRY, forward_only.name, forward_only)
    monkeypatch.setitem(configs.CONFIGS, forward_only.name, Config(forward_only.name, configs.slide_layout(forward_only.name), ""))
    row = measure_model(ModelCase(forward_only.name, resolution=32, pass_name="forward_backward"), SETTINGS).to_columns()
    assert row["status"] == "skipped" and "forward only (no backward kernel)" in row["reason"], row


def test_fast_swin_trains_through_the_c_backward_checked_against_its_oracle_model():
    """fast-swin-t's training step runs local-tiled's backward kernel in stages 1-2; every gradient is checked."""
    row = measure_model(ModelCase("fast-swin-t", resolution=32, pass_name="forward_backward"), SETTINGS).to_columns()
    assert row["status"] == "ok" and 0 < row["grad_max_abs_err"] <= row["grad_tolerance"], row["reason"]


def test_the_console_and_the_report_show_the_gradient_errors(tmp_path, capsys):
    rows = [make_row("im2col", grad_max_abs_err=1.0e-6, grad_tolerance=5e-6, **{"pass": "forward_backward"}),
            make_row("slide", grad_max_abs_err=2.5e-6, grad_tolerance=5e-6, **{"pass": "forward_backward"}),
            make_row("window")]  # a forward row: no gradient
    frame = pd.DataFrame(rows)
    table = summary_table(frame)
    cells = {cells[1]: cells for cells in zip(*(list(column.cells) for column in table.columns))}
    assert table.columns[-1].header == "grad abs err"
    assert cells["slide"][-1] == "2.5e-06" and cells["window"][-1] == "-"
    csv_path = write_csv(tmp_path / "run.csv", rows)
    assert run_bench.main(["report", "--no-plots", str(csv_path)]) == 0
    text = csv_path.with_suffix(".md").read_text()
    assert "## Gradients: largest max |dq, dk or dv - float64 oracle's|" in text
    assert "| slide | 2.5e-06 |" in text and "| window | - |" in text
    assert "grad abs err" not in [c.header for c in summary_table(frame[frame["variant"] == "window"]).columns]
