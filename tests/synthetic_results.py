"""Synthetic results CSVs for the figure and report tests: known numbers, every column of the schema.

The medians follow a simple rule (base ms x batch x pixels / 196), so a test can compute the
value a figure or table must show. These are test inputs, not measurements.
"""

from __future__ import annotations

from pathlib import Path

from bench.results import append_rows

FAMILY = {"im2col": "local-zero-pad", "slide": "local-zero-pad", "window": "window", "natten": "neighborhood",
          "my-plugin": "local-masked"}
BASE_MS = {"im2col": 10.0, "slide": 5.0, "window": 1.0, "natten": 20.0, "my-plugin": 2.5}
NOT_MEASURED = dict(median_ms=None, iqr_ms=None, min_ms=None, n_measurements=None, peak_mem_mb=None,
                    throughput_per_s=None, gflop_per_s=None, max_abs_err=None)


def median_ms(variant: str, batch: int, height: int, width: int) -> float:
    """Return the synthetic median of a case."""
    return BASE_MS[variant] * batch * height * width / 196


def row(variant: str, batch: int = 1, res: int = 14, run_id: str = "20260101-000000-aaaaaa",
        host: str = "synthetic-a", status: str = "ok", reason: str = "", **overrides: object) -> dict[str, object]:
    """Return one complete results row; a non-ok status blanks the measured columns."""
    median = median_ms(variant, batch, res, res)
    values: dict[str, object] = dict(
        run_id=run_id, timestamp="2026-01-01T00:00:00+0000", variant=variant, family=FAMILY[variant], device="cpu",
        device_name=f"Synthetic CPU of {host}", dtype="float32", batch=batch, height=res, width=res, heads=2,
        head_dim=32, kernel_size=7, dilation=1, runtime="eager", status=status, reason=reason, median_ms=median,
        iqr_ms=median * 0.02, min_ms=median * 0.99, n_measurements=5, peak_mem_mb=BASE_MS[variant] * res * res / 196,
        throughput_per_s=batch / (median / 1000), gflop=0.01, gflop_per_s=0.01 / (median / 1000),
        max_abs_err=1e-6, threads=4, host=host, cpu=f"Synthetic CPU of {host}", gpu="", torch_version="2.13.0",
        natten_version="", git_sha="abc1234", backend="")
    values["pass"] = "forward"
    if status != "ok" and status != "mismatch":
        values.update(NOT_MEASURED)
    values.update(overrides)
    return values


def grid_rows(variants: list[str], resolutions: list[int], batches: list[int], **overrides: object) -> list[dict]:
    """Return ok rows for every variant x resolution x batch."""
    return [row(v, b, r, **overrides) for v in variants for r in resolutions for b in batches]


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Write rows as a results CSV at path and return the path."""
    append_rows(path, rows)
    return path


def models_csv(path: Path, times: dict[str, tuple[float, ...]] | None = None) -> Path:
    """Write model rows as `run_bench.py models` does (by default two rounds, Slide-Swin-T faster than Swin-T in both)."""
    rows = [{"run_id": "20990101-000000-aaaaaa", "timestamp": "2099-01-01T00:00:00+0000", "variant": config, "family": "model",
             "device": "cpu", "dtype": "float32", "batch": 1, "height": 224, "width": 224, "heads": 3, "head_dim": 32,
             "kernel_size": 3, "pass": "forward", "runtime": "eager", "status": "ok", "reason": "", "median_ms": ms,
             "iqr_ms": 1.0, "min_ms": ms, "n_measurements": 5, "throughput_per_s": 1e3 / ms, "gflop": 9.0, "params": 28_300_000,
             "max_abs_err": 5e-7, "round": round_number, "scope": "model"}
            for config, ms_per_round in (times or {"swin-t": (150, 160), "slide-swin-t": (100, 110)}).items()
            for round_number, ms in enumerate(ms_per_round, 1)]
    append_rows(path, rows)
    return path
