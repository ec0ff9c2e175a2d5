"""The CUDA code paths: every variant against its oracle, timing that waits for the GPU, oom rows, peak memory, compile.

These run only where CUDA is (scripts/gpu_sweep.sh runs them on a GPU machine); elsewhere they
skip and say so.
"""

from __future__ import annotations

import pytest
import torch

import attention_variants as av
from attention_variants.case import Case
from bench import results
from bench.measure.case import measure_case, release_memory
from bench.measure.settings import Settings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
SETTINGS = Settings(threads=1, warmup_s=0.05, min_run_s=0.05, max_run_s=0.2)
SMALL = dict(batch=2, height=14, width=14, heads=2, head_dim=32, kernel_size=7)


def _case(variant: str, **changes: object) -> Case:
    fields = dict(variant=variant, device="cuda", dtype="float32", pass_name="forward", runtime="eager", **SMALL)
    fields.update(changes)
    return Case(**fields)


@pytest.mark.parametrize("pass_name", ["forward", "forward_backward"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_every_variant_that_runs_on_cuda_matches_its_oracle(pass_name, dtype):
    outcomes = {}
    for name in av.names():
        case = _case(name, dtype=dtype, pass_name=pass_name)
        result = measure_case(case, SETTINGS)
        release_memory(case, result.status)
        outcomes[name] = (result.status, result.reason)
    failed = {name: outcome for name, outcome in outcomes.items() if outcome[0] not in ("ok", "skipped")}
    assert not failed, failed
    assert sum(status == "ok" for status, _ in outcomes.values()) >= 5, outcomes


def test_timing_waits_for_the_gpu():
    """A call that only launches GPU work must be timed for the work, not the launch (torch.cuda events as the referee)."""
    import tests.plugins.cuda_faults as faults

    result = measure_case(_case("cuda-sleeps"), SETTINGS)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        torch.cuda._sleep(faults.SLEEP_CYCLES)
    end.record()
    torch.cuda.synchronize()
    per_call_ms = start.elapsed_time(end) / 10
    assert result.median_ms == pytest.approx(per_call_ms, rel=0.2)


def test_out_of_memory_is_an_oom_row_and_the_next_case_starts_clean():
    import tests.plugins.cuda_faults  # noqa: F401  registers cuda-allocates

    before = torch.cuda.memory_allocated()
    oom = measure_case(_case("cuda-allocates"), SETTINGS)
    release_memory(_case("cuda-allocates"), oom.status)
    assert oom.status == "oom" and "OutOfMemoryError" in oom.reason
    assert torch.cuda.memory_allocated() == before
    after = measure_case(_case("im2col"), SETTINGS)
    assert after.status == "ok"


def test_peak_memory_counts_what_the_case_allocates():
    """Im2Col materialises k*k copies of keys and values: its peak is at least their size."""
    case = _case("im2col", batch=4, height=28, width=28)
    result = measure_case(case, SETTINGS)
    unfolded_mb = 2 * case.batch * case.heads * case.height * case.width * case.head_dim * case.kernel_size**2 * 4 / 2**20
    assert result.status == "ok" and result.peak_mem_mb >= unfolded_mb
    smaller = measure_case(_case("im2col", batch=1, height=28, width=28), SETTINGS)
    assert smaller.peak_mem_mb < result.peak_mem_mb / 2


def test_a_compiled_case_records_its_compile_time():
    result = measure_case(_case("local-fused", runtime="inductor"), SETTINGS)
    assert result.status == "ok", result.reason
    assert result.compile_ms > 0 and result.median_ms < result.compile_ms


def test_the_export_runtime_runs_an_aotinductor_package_on_the_gpu():
    result = measure_case(_case("im2col", runtime="export"), SETTINGS)
    assert result.status == "ok", result.reason
    assert result.export_ms > 0 and "export vs eager drift" in result.reason


def test_a_cuda_sweep_writes_ok_rows_with_the_gpu_named(cli, tmp_path):
    out = tmp_path / "gpu.csv"
    done = cli("--devices", "cuda", "--variants", "im2col,slide,window", "--resolutions", "14", "--batch", "1",
               "--kernel-sizes", "7", "--passes", "forward,forward_backward", "--min-run-s", "0.05", "--max-run-s", "0.2",
               "--no-plots", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = results.load(out)
    assert len(rows) == 6 and set(rows["status"]) == {"ok"}, rows[["variant", "status", "reason"]]
    assert set(rows["device_name"]) == {torch.cuda.get_device_name(0)} and rows["peak_mem_mb"].gt(0).all()
