"""The sweep loop: every case becomes one results row, appended to the CSV as soon as it is measured."""

from __future__ import annotations

import contextlib
import gc
import random
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
import torch

from attention_variants.case import Case
from bench.axes import case_columns
from bench.execution import early
from bench.execution.isolation import Isolation
from bench.execution.pool import WorkerPool
from bench.execution.rows import make_row
from bench.measure import machine, roofline
from bench.measure.case import measure_case, release_memory
from bench.measure.record import Measured
from bench.measure.settings import Settings
from bench.results import ResultsError, append_rows
from bench.results.guard import keep_own_rows, rows_text
from bench.results.samples import append_samples, take_samples
from bench.results.selection import case_key
from bench.results.store import LockTimeout


def run_case(case: Case, settings: Settings) -> Measured:
    """Return what measuring one case in this process observed."""
    measured = measure_case(case, settings)
    release_memory(case, measured.status)
    return measured


def case_key_text(case: Case, round_number: int = 1) -> tuple[str, ...]:
    """Return the round and the case's key values as text (how they compare with a loaded CSV's)."""
    key = case_columns(case)
    return (str(round_number), *(str(key[column]) for column in case_key()))


def plan_rounds(cases: list[Case], repeats: int, seed: int) -> list[tuple[int, Case]]:
    """Return (round, case) in running order: the cases once, or `repeats` rounds each in its own shuffled order.

    Interleaved rounds make load that comes and goes between minutes hit every variant alike;
    the order of each round is drawn from the seed, so a rerun repeats it.
    """
    if repeats == 1:
        return [(1, case) for case in cases]
    plan = []
    for round_number in range(1, repeats + 1):
        order = list(cases)
        random.Random(f"{seed}/{round_number}").shuffle(order)
        plan += [(round_number, case) for case in order]
    return plan


def recorded_keys(recorded: pd.DataFrame) -> list[tuple[str, ...]]:
    """Return the (round, *case_key()) text of every row of a loaded results file (as case_key_text gives them)."""
    rounds = recorded["round"].fillna(1)  # files from before --repeats hold one round
    keys = recorded[list(case_key())].assign(round=rounds)[["round", *case_key()]]
    return list(keys.astype(str).itertuples(index=False, name=None))


def pending(plan: list[tuple[int, Case]], recorded: Iterable[tuple[str, ...]]) -> list[tuple[int, Case]]:
    """Return the (round, case) pairs of the plan whose case_key_text is not among `recorded`, in order."""
    done = set(recorded)
    return [(round_number, case) for round_number, case in plan if case_key_text(case, round_number) not in done]


def run_sweep(
    plan: list[tuple[int, Case]],
    settings: Settings,
    out: Path,
    run_id: str,
    on_start: Callable[[Case], None] = lambda case: None,
    on_row: Callable[[Case, dict[str, object]], None] = lambda case, row: None,
    isolation: Isolation = Isolation(),
    on_note: Callable[[str], None] = lambda text: None,
    recalibrate: bool = False,
    on_begin: Callable[[], None] = lambda: None,
) -> list[dict[str, object]]:
    """Run every (round, case) of the plan, appending each row to `out` as soon as it is measured; return the rows.

    Each case runs in a worker subprocess (bench.execution.isolation), fresh for every round;
    with cases_per_worker 0, in this process, where a crash ends the sweep.
    An interrupt (Ctrl-C) kills the running worker and propagates; finished rows are on disk.
    """
    torch.set_num_threads(settings.threads)
    rows, written, in_process, current_round = [], [], isolation.cases_per_worker == 0, None  # written: their CSV lines
    with _frozen_heap() if in_process else WorkerPool(isolation, early.adopt(isolation)) as pool:
        fingerprint, settings = _begin(pool, plan, settings, isolation, recalibrate, on_begin)
        for round_number, case in plan:
            if pool is not None and current_round is not None and round_number != current_round:
                pool.retire()  # a fresh worker per round: no round inherits another's process state
            current_round = round_number
            on_start(case)
            measured = run_case(case, settings) if in_process else pool.measure(asdict(case), asdict(settings))
            row = make_row(case, measured, run_id, fingerprint, settings.peaks, round_number)
            _store(out, row, written, pool, on_note)
            rows.append(row)
            written.append(rows_text([row]))
            on_row(case, row)
    note = keep_own_rows(out, written)  # the last case too may have written into the file
    if note:
        on_note(note)
    return rows


@contextlib.contextmanager
def _frozen_heap():
    """In-process cases: what this process held before the sweep is not the cases' garbage, so each case's collection
    (release_memory) skips it, as a worker's does (0.14 s a case in a test session's heap -> ~0); unfrozen after."""
    gc.freeze()
    try:
        yield None
    finally:
        gc.unfreeze()


def _begin(pool: WorkerPool | None, plan: list[tuple[int, Case]], settings: Settings, isolation: Isolation,
           recalibrate: bool, on_begin: Callable[[], None]) -> tuple[dict[str, object], Settings]:
    """Launch the first worker, then (while it imports torch) run on_begin and take the fingerprint and the peaks."""
    if pool is not None and plan:
        pool.launch()
    on_begin()
    fingerprint = {**machine.fingerprint(settings.threads), "allocator": isolation.allocator}
    peaks = roofline.cached_calibration([case for _, case in plan], settings.threads, settings.peaks, recalibrate)
    return fingerprint, replace(settings, peaks=peaks)


def _store_samples(out: Path, lines: list[dict[str, object]], on_note: Callable[[str], None]) -> None:
    """Append a row's block times beside the CSV; failing to is a note, never the loss of the row (already written)."""
    try:
        append_samples(out, lines)
    except (OSError, ResultsError) as err:
        on_note(f"the block times of {lines[0]['variant'] if lines else 'a case'} were not kept: {err}")


OWN_WORKER_WAIT_S = 1.0  # the first wait for the results file's lock, before retiring the worker that may hold it


def _store(out: Path, row: dict[str, object], written: list[str], pool: WorkerPool | None,
           on_note: Callable[[str], None]) -> None:
    """Append the row, then its block times beside it; first make sure the lines written before are still there (a case
    may have written into the file)."""
    samples = take_samples(row)
    for attempt in (1, 2):
        # Another writer holds the lock for milliseconds: waiting longer first would only wait on a worker holding it.
        wait_s = OWN_WORKER_WAIT_S if attempt == 1 and pool is not None else None
        try:
            note = keep_own_rows(out, written, wait_s)
            append_rows(out, [row], wait_s)
            break
        except LockTimeout:
            if attempt == 2 or pool is None:
                raise
            pool.retire()  # the lock may be held through a descriptor the case left open in its worker
        except OSError as err:  # a full disk, a file made read-only mid-sweep: stop in one line, keep what is there
            raise ResultsError(f"cannot append to {out}: {err.strerror or err}; the {len(written)} rows before are in it, "
                               f"this case ({row['variant']}) is lost; finish with --resume {out}") from None
    _store_samples(out, samples, on_note)
    if note:
        on_note(note)
