"""Runtimes (--runtimes eager,inductor,export,onnxruntime,executorch,openvino): what each runs, how a failure to
export is recorded, that a traced output is checked like any other, and that files from before (a `compiled`
column) read as the runtimes they measured."""

import csv
from dataclasses import asdict, dataclass

import pytest

from attention_variants.case import Case
from bench import results
from bench.execution import spec
from bench.execution.contract import as_case
from bench.measure import runtimes
from bench.measure.case import measure_case, prime_case
from bench.measure.runtimes import Runnable, runtime_unavailable
from bench.measure.settings import Settings
from bench.results.merge import merge_files
from tests.conftest import run_main

SETTINGS = Settings(threads=1, warmup_s=0.0, min_run_s=0.01, max_run_s=0.05)
SMALL = dict(batch=1, height=7, width=9, heads=1, head_dim=4, kernel_size=3)
TINY = ["--variants", "im2col", "--resolutions", "7", "--kernel-sizes", "3", "--heads", "1", "--head-dim", "8",
        "--min-run-s", "0.01", "--max-run-s", "0.02", "--threads", "1", "--no-plots"]


def _measure(variant: str, runtime: str, **changes) -> dict:
    return measure_case(Case(variant=variant, runtime=runtime, **{**SMALL, **changes}), SETTINGS).to_columns()


@pytest.mark.parametrize("changes,reason", [
    (dict(runtime="export", pass_name="forward_backward"), "export runs inference only"),
    (dict(runtime="onnxruntime", pass_name="forward_backward"), "onnxruntime runs inference only"),
    (dict(runtime="onnxruntime", device="cuda"), "CPU execution provider only"),
    (dict(runtime="onnxruntime", dtype="bfloat16"), "numpy has no bfloat16"),
    (dict(runtime="executorch", pass_name="forward_backward"), "executorch runs inference only"),
    (dict(runtime="executorch", device="cuda"), "executorch is measured with XNNPACK and its portable CPU kernels only"),
    (dict(runtime="openvino", pass_name="forward_backward"), "openvino runs inference only"),
    (dict(runtime="openvino", device="mps"), "openvino is measured with its CPU device only"),
    (dict(runtime="openvino", dtype="bfloat16"), "numpy has no bfloat16"),
    (dict(runtime="openvino", dtype="float64"), "computes in float32 at most"),
])
def test_what_a_runtime_cannot_run_is_refused_with_the_reason(changes, reason):
    if changes["runtime"] in runtimes.PACKAGES and "device" not in changes and "pass_name" not in changes:
        needs_runtime(changes["runtime"])  # the package check comes first
    assert reason in runtime_unavailable(Case(variant="im2col", **changes))
    assert runtime_unavailable(Case(variant="im2col", **{**changes, "runtime": "eager"})) is None


def test_a_skipped_runtime_is_a_row_with_the_reason():
    row = _measure("slide", "onnxruntime", pass_name="forward_backward")
    assert row["status"] == "skipped" and row["reason"] == "onnxruntime runs inference only: forward, no backward"


def test_a_wrong_traced_output_is_a_mismatch_not_ok(monkeypatch):
    """The oracle checks the eager forward; the traced output's drift from it counts in max_abs_err."""
    def off_by_a_little(module, inputs, threads):
        return Runnable(lambda *xs: module(*xs) + 1e-2, export_ms=1.0)

    monkeypatch.setattr(runtimes, "_onnxruntime", off_by_a_little)
    row = _measure("im2col", "onnxruntime")
    assert row["status"] == "mismatch" and "onnxruntime vs eager drift 0.01" in row["reason"]
    assert row["max_abs_err"] >= 1e-2 and row["export_ms"] == 1.0


def test_a_runtime_failing_on_its_first_call_is_an_error_row(monkeypatch):
    def broken(module, inputs, threads):
        def call(*xs):
            raise RuntimeError("ORT kernel not implemented")
        return Runnable(call, export_ms=1.0)

    monkeypatch.setattr(runtimes, "_onnxruntime", broken)
    row = _measure("im2col", "onnxruntime")
    assert row["status"] == "error" and row["reason"] == "onnxruntime (first call) failed: RuntimeError: ORT kernel not implemented"


def needs_runtime(runtime: str) -> None:
    """Skip with the reason where the runtime's packages are not installed (the `edge` and `onnx` extras)."""
    reason = runtime_unavailable(Case(variant="im2col", runtime=runtime))
    if reason:
        pytest.skip(reason)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["executorch", "openvino"])
def test_an_edge_runtime_runs_slide_checked_and_a_wrong_answer_from_it_is_a_mismatch(monkeypatch, runtime):
    needs_runtime(runtime)
    row = _measure("slide", runtime)
    assert row["status"] == "ok", row["reason"]
    assert f"{runtime} vs eager drift" in row["reason"] and row["max_abs_err"] <= row["tolerance"]
    assert row["export_ms"] > 0 and row["compile_ms"] > 0 and row["median_ms"] < row["export_ms"]
    expected = "executorch, 1 threads: XNNPACK took " if runtime == "executorch" else "openvino 20"
    assert expected in row["backend"] and (runtime == "executorch" or "CPU, 1 threads, latency hint, f32" in row["backend"])
    real = getattr(runtimes, f"_{runtime}")

    def off_by_a_little(module, inputs, threads, *rest):  # a planted bug: the runtime's own output, shifted
        run = real(module, inputs, threads, *rest)
        return Runnable(lambda *xs: run.fn(*xs) + 1e-2, run.export_ms, run.backend)

    monkeypatch.setattr(runtimes, f"_{runtime}", off_by_a_little)
    row = _measure("slide", runtime)
    assert row["status"] == "mismatch" and f"{runtime} vs eager drift 0.01" in row["reason"], row["reason"]


def test_openvinos_reason_is_what_it_says_not_its_banners():
    said = ("Check 'false' failed at src/frontends/common/src/frontend.cpp:53:\nConverting input model\nGeneralFailure: "
            "Check 'it != end()' failed at src/frontends/pytorch/src/node_context.cpp:190:\nFrontEnd API failed with "
            "GeneralFailure:\nNo tensor corresponding input: 170 exist.\n\n\nAt:\n  /x/fx_decoder.py(566): visit_subgraph\n")
    assert runtimes.root_line(RuntimeError(said)) == (
        "RuntimeError: FrontEnd API failed with GeneralFailure: No tensor corresponding input: 170 exist.")


@pytest.mark.slow
@pytest.mark.parametrize("variant, runtime, step", [
    ("natten", "executorch", "XNNPACK lowering failed: SpecViolationError: Operator torch._ops.aten.sort.stable"),
    ("natten", "openvino", "OpenVINO convert_model failed: RuntimeError: FrontEnd API failed"),
    # XNNPACK's partitioner takes a tensor of the window partition that XNNPACK then refuses when the program loads:
    # the reason is in ExecuTorch's log, not in its exception ("Failed to load method forward, error: 0x:1").
    ("window", "executorch", "ExecuTorch load failed: XNNCompiler: Failed to define tensor"),
])
def test_what_an_edge_runtime_cannot_take_is_an_error_row_naming_the_step_and_the_cause(variant, runtime, step):
    needs_runtime(runtime)
    pytest.importorskip("natten")
    row = _measure(variant, runtime, head_dim=8, height=14, width=14, kernel_size=7)
    assert row["status"] == "error" and row["reason"].startswith(step) and "\n" not in row["reason"], row["reason"]


def test_the_exporters_wrapped_reason_is_unwrapped():
    try:
        try:
            raise KeyError("aten.sort.stable")
        except KeyError as inner:
            raise RuntimeError("\x1b[96mFailed to convert\x1b[0m the exported program\nmore") from inner
    except RuntimeError as err:
        assert runtimes.root_line(err) == "KeyError: 'aten.sort.stable'"
    assert runtimes.root_line(RuntimeError("\x1b[1mStep 3/3\x1b[0m\nmore")) == "RuntimeError: Step 3/3"
    assert runtimes.root_line(KeyError("<FlexAttentionHOP object at 0x7f2a69c651d0>")) == "KeyError: '<FlexAttentionHOP object>'"


def test_a_c_kernel_cannot_be_exported_and_says_so():
    row = _measure("local-tiled", "export")
    assert row["status"] == "error"
    assert row["reason"].startswith("torch.export failed: RuntimeError: Cannot access data pointer of Tensor"), row["reason"]


@pytest.mark.slow
def test_onnxruntime_runs_im2col_checked_and_timed_apart_from_its_export():
    row = _measure("im2col", "onnxruntime")
    assert row["status"] == "ok", row["reason"]
    assert "onnxruntime vs eager drift" in row["reason"] and row["max_abs_err"] <= row["tolerance"]
    assert row["export_ms"] > 0 and row["compile_ms"] > 0 and row["median_ms"] < row["export_ms"]


@pytest.mark.slow
def test_export_runs_an_aotinductor_package_checked_and_timed_apart_from_its_export():
    row = _measure("im2col", "export")
    assert row["status"] == "ok", row["reason"]
    assert "export vs eager drift" in row["reason"] and row["max_abs_err"] <= row["tolerance"]
    assert row["export_ms"] > 0 and row["compile_ms"] > row["median_ms"]


@pytest.mark.slow
def test_natten_does_not_export_to_onnx_and_the_row_says_why():
    pytest.importorskip("natten")
    row = _measure("natten", "onnxruntime", head_dim=8)  # natten's CPU backend needs a power of two >= 8
    assert row["status"] == "error" and row["reason"].startswith("torch.onnx.export failed: "), row["reason"]


@pytest.mark.slow
def test_a_sweep_over_runtimes_writes_one_row_per_runtime(tmp_path):
    out = tmp_path / "r.csv"
    status, _ = run_main(["sweep", *TINY, "--variants", "im2col,local-tiled", "--runtimes", "eager,onnxruntime", "--out", str(out)])
    frame = results.load(out).set_index(["variant", "runtime"])
    assert status == 0 and len(frame) == 4
    assert frame.loc[("im2col", "onnxruntime"), "status"] == "ok" and frame.loc[("im2col", "onnxruntime"), "export_ms"] > 0
    assert frame.loc[("local-tiled", "onnxruntime"), "status"] == "error"
    assert frame.loc[[("im2col", "eager"), ("local-tiled", "eager")], "status"].eq("ok").all()
    assert frame.loc[[("im2col", "eager"), ("local-tiled", "eager")], "export_ms"].isna().all()


def _as_schema_5(path, out, compiled: str = "false"):
    """Write `path` as a schema-5 file wrote it: a boolean `compiled` where `runtime` is, no export_ms."""
    with open(path, newline="") as source, open(out, "w", newline="") as target:
        rows = list(csv.DictReader(source))
        header = [("compiled" if c == "runtime" else c) for c in results.COLUMNS if c != "export_ms"]
        writer = csv.DictWriter(target, header, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(row | {"compiled": compiled, "schema_version": "5"} for row in rows)


def test_a_file_with_compiled_reads_as_runtimes_resumes_merges_and_is_appended_to(tmp_path):
    new, old, older = tmp_path / "new.csv", tmp_path / "old.csv", tmp_path / "compiled.csv"
    assert run_main(["sweep", *TINY, "--out", str(new)])[0] == 0
    _as_schema_5(new, old)
    _as_schema_5(new, older, compiled="True")
    assert list(results.load(old)["runtime"]) == ["eager"] and list(results.load(older)["runtime"]) == ["inductor"]
    assert merge_files([old, new]).duplicates == 1  # the same measurement, before and after the rename
    status, lines = run_main(["sweep", *TINY, "--compiled", "false", "--resume", str(old)])
    assert status == 0 and any("1 of 1 cases already recorded, 0 to run" in line for line in lines), lines
    assert run_main(["sweep", *TINY, "--dilations", "3", "--resume", str(old)])[0] == 0
    with open(old, newline="") as handle:
        header = next(csv.reader(handle))
    assert "runtime" in header and "compiled" not in header  # appending rewrote the old header
    assert list(results.load(old)["runtime"]) == ["eager", "eager"]


def test_a_runtime_a_file_cannot_have_is_one_line_error(tmp_path):
    path = tmp_path / "bad.csv"
    row = {column: "" for column in results.COLUMNS}
    row.update(run_id="r", variant="im2col", device="cpu", dtype="float32", batch=1, height=7, width=7, heads=1, head_dim=8,
               kernel_size=3, dilation=1, runtime="tensorrt", status="ok", median_ms=1.0)
    results.append_rows(path, [row])
    with pytest.raises(results.ResultsError, match="unknown runtime 'tensorrt'"):
        results.load(path)


@pytest.mark.parametrize("raw,expected", [
    ({"compiled": ["false", "true"]}, ("eager", "inductor")),
    ({"compiled": ["true"]}, ("inductor",)),
    ({"runtimes": ["eager", "export", "onnxruntime"]}, ("eager", "export", "onnxruntime")),
])
def test_runtimes_and_the_old_compiled_flag(raw, expected):
    assert spec.make_sweep("quick", raw).runtimes == expected


def test_a_preset_written_with_compiled_still_loads(tmp_path):
    preset = tmp_path / "old.toml"
    preset.write_text('variants = ["im2col"]\ncompiled = [false, true]\n')
    assert spec.make_sweep(str(preset)).runtimes == ("eager", "inductor")
    assert spec.make_sweep(str(preset), {"runtimes": ["export"]}).runtimes == ("export",)


@dataclass(frozen=True)
class CaseBeforeRuntimes:
    """attention_variants.case.Case as an A/B gate's base revision may have it: `compiled`, no runtime, no dilation."""

    variant: str
    device: str = "cpu"
    dtype: str = "float32"
    batch: int = 1
    height: int = 28
    width: int = 28
    heads: int = 2
    head_dim: int = 32
    kernel_size: int = 7
    pass_name: str = "forward"
    compiled: bool = False

    @property
    def torch_dtype(self):
        return Case(variant=self.variant, dtype=self.dtype).torch_dtype

    @property
    def radius(self) -> int:
        return self.kernel_size // 2

    @property
    def neighbour_elements(self) -> int:
        return self.batch * self.heads * self.height * self.width * self.kernel_size**2 * self.head_dim

    @property
    def needs_grad(self) -> bool:
        return self.pass_name == "forward_backward"

    def replace(self, **changes):
        return CaseBeforeRuntimes(**{**asdict(self), **changes})


def test_an_older_case_class_is_measured_under_the_runtimes_it_can_express():
    """The A/B gate's base worker imports the base revision's attention_variants: its Case may say `compiled`."""
    old = as_case(CaseBeforeRuntimes, asdict(Case(variant="im2col", runtime="inductor", **SMALL)))
    assert old.compiled and old.runtime == "inductor" and old.traced
    eager = old.replace(runtime="eager")
    assert not eager.compiled and eager.runtime == "eager" and not eager.traced and eager.height == SMALL["height"]
    assert old.dilation == 1 and "dilation" not in asdict(old)
    assert measure_case(eager, SETTINGS).status == "ok" and prime_case(old, SETTINGS).status == "ok"
    with pytest.raises(ValueError, match="predates the runtime axis: it cannot run runtime export"):
        as_case(CaseBeforeRuntimes, asdict(Case(variant="im2col", runtime="export")))
    assert as_case(Case, asdict(Case(variant="im2col", runtime="export"))) == Case(variant="im2col", runtime="export")
