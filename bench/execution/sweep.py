"""The sweep loop: every case becomes one results row, appended to the CSV as soon as it is measured."""

from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Iterable

import torch

import attention_variants as av
from attention_variants.case import Case
from bench.execution.isolation import Isolation, WorkerPool
from bench.measure import machine, roofline
from bench.measure.case import measure_case
from bench.measure.settings import Settings
from bench.results import append_rows
from bench.results.schema import SCHEMA_VERSION
from bench.results.selection import CASE_KEY


def case_row(case: Case, run_id: str, fingerprint: dict[str, object]) -> dict[str, object]:
    """Return the columns of a case's row that do not depend on measuring it."""
    return {
        "run_id": run_id,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **case.key(),
        "family": av.get(case.variant).family,
        "device_name": machine.device_name(case.device),
        **fingerprint,
        "gflop": roofline.analytic_gflop(case),
        "schema_version": SCHEMA_VERSION,
    }


def run_case(case: Case, settings: Settings, run_id: str, fingerprint: dict[str, object]) -> dict[str, object]:
    """Return the full results row of one case, measured in this process."""
    row = case_row(case, run_id, fingerprint)
    measured = measure_case(case, settings)
    row.update(measured.to_columns())
    if measured.status != "skipped":  # a skipped case built nothing; a full collection costs ~0.1 s
        gc.collect()
        if case.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()  # a long sweep otherwise fragments the allocator
    return row


def case_key_text(case: Case) -> tuple[str, ...]:
    """Return the case's CASE_KEY values as text (how they compare with a loaded CSV's)."""
    key = case.key()
    return tuple(str(key[column]) for column in CASE_KEY)


def pending(cases: list[Case], recorded: Iterable[tuple[str, ...]]) -> list[Case]:
    """Return the cases whose CASE_KEY (as text) is not among `recorded`, in order."""
    done = set(recorded)
    return [case for case in cases if case_key_text(case) not in done]


def run_sweep(
    cases: list[Case],
    settings: Settings,
    out: Path,
    run_id: str,
    on_start: Callable[[Case], None] = lambda case: None,
    on_row: Callable[[Case, dict[str, object]], None] = lambda case, row: None,
    isolation: Isolation | None = Isolation(),
) -> list[dict[str, object]]:
    """Run every case, appending each row to `out` as soon as it is measured; return the rows.

    With `isolation` (the default) each case runs in a worker subprocess (bench.execution.isolation);
    with None, or cases_per_worker 0, in this process, where a crash ends the sweep.
    An interrupt (Ctrl-C) kills the running worker and propagates; finished rows are on disk.
    """
    torch.set_num_threads(settings.threads)
    fingerprint = machine.fingerprint(settings.threads)
    settings = replace(settings, peaks=roofline.calibrate(cases, settings.threads, settings.peaks))
    rows = []
    in_process = isolation is None or isolation.cases_per_worker == 0
    with contextlib.nullcontext() if in_process else WorkerPool(isolation) as pool:
        for case in cases:
            on_start(case)
            if in_process:
                row = run_case(case, settings, run_id, fingerprint)
            else:
                row = {**case_row(case, run_id, fingerprint), **pool.measure(asdict(case), asdict(settings))}
            append_rows(out, [row])
            rows.append(row)
            on_row(case, row)
    return rows
