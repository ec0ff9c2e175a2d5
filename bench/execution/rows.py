"""A results row, built in one place from (case, machine fingerprint, what was measured); derived numbers computed here once.

The sweep, the A/B gate and the models command call `make_row`; a worker only observes
(bench/measure/record.py). Derived from the case and the observations: gflop (the analytic
count of an attention case; a model's is counted by its worker), throughput, GFLOP/s and the
roofline columns (against this machine's calibrated peaks).
"""

from __future__ import annotations

import time

import attention_variants as av
from attention_variants.case import Case
from bench.axes import case_columns
from bench.measure import machine, roofline
from bench.measure.record import Measured
from bench.models.measure import ModelCase
from bench.models.measure import case_columns as model_columns
from bench.results.schema import SAMPLES_FIELD, SCHEMA_VERSION

Peaks = dict[str, tuple[float, float]]  # "device/dtype" -> (GFLOP/s, GB/s), as Settings.peaks holds them


def described(case: Case | ModelCase) -> dict[str, object]:
    """Return the columns that say what a case is: its axes (a model's stage-1 shape), family and scope."""
    if isinstance(case, ModelCase):
        return model_columns(case)
    return {**case_columns(case), "family": av.get(case.variant).family, "scope": "op"}


def make_row(case: Case | ModelCase, measured: Measured, run_id: str, fingerprint: dict[str, object], peaks: Peaks,
             round_number: int = 1) -> dict[str, object]:
    """Return the results row of one measured case (its block times under block_ms, which the store keeps beside the CSV)."""
    gflop = measured.gflop if isinstance(case, ModelCase) else roofline.analytic_gflop(case)
    row = {
        "run_id": run_id, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **described(case),
        "device_name": machine.device_name(case.device), **fingerprint, "schema_version": SCHEMA_VERSION,
        "round": round_number, **measured.to_columns(), "gflop": gflop, SAMPLES_FIELD: list(measured.block_ms),
    }
    if not measured.median_ms:
        return row
    seconds = measured.median_ms / 1e3
    row.update(throughput_per_s=case.batch / seconds, gflop_per_s=gflop / seconds if gflop else None)
    if isinstance(case, Case):
        found = peaks.get(f"{case.device}/{case.dtype}")
        found = roofline.Peaks(*found) if found else roofline.peaks(case.device, case.torch_dtype, fingerprint["threads"])
        row.update(roofline.roofline_columns(gflop, case, measured.median_ms, found))
    return row
