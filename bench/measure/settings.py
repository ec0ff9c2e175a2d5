"""How the cases of a run are measured: threads, time budgets, seed and the run's roofline peaks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    """How cases are measured (the same for every case of a run)."""

    threads: int
    warmup_s: float = 0.05
    min_run_s: float = 0.1
    max_run_s: float = 1.0
    seed: int = 0
    # "device/dtype" -> [peak GFLOP/s, peak GB/s], calibrated once per run by the sweep's own
    # process and handed to every worker, so that all rows of a run share one roofline.
    peaks: dict[str, list[float]] = field(default_factory=dict)
    # The workers' allocator (bench/execution/allocator.py): under `steady` the warm-up also
    # waits until calls stop mapping new pages.
    allocator: str = "steady"
    # Fidelity command only: stop the measuring process before timing and after each pace_s of
    # timed blocks, so its parent can interleave processes (bench.measure.timing.measure).
    pace_s: float = 0.0
