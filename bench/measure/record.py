"""What measuring one case observed, as one typed record: a worker sends it, the sweep builds the row from it.

Only observations: numbers derived from them and from the case (gflop, throughput, the roofline)
are computed once, when the row is built (bench/execution/rows.py). Imports no torch.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass

from bench.results.schema import STATUSES


class RecordError(ValueError):
    """A message that is not a Measured record; the message is one line."""


@dataclass(frozen=True)
class Measured:
    """A case's status and reason, and what was observed when it ran (None: not observed)."""

    status: str
    reason: str = ""
    median_ms: float | None = None
    iqr_ms: float | None = None
    min_ms: float | None = None
    n_measurements: int | None = None
    block_ms: tuple[float, ...] = ()  # each timed block's time per call, in measuring order (kept beside the CSV)
    minor_faults_per_call: float | None = None  # getrusage between timed blocks (bench/measure/timing.py)
    major_faults_per_call: float | None = None
    voluntary_switches_per_call: float | None = None
    involuntary_switches_per_call: float | None = None
    peak_mem_mb: float | None = None
    max_abs_err: float | None = None  # the oracle check (bench/measure/correctness.py)
    tolerance: float | None = None
    mean_abs_err: float | None = None
    mean_tolerance: float | None = None
    grad_max_abs_err: float | None = None  # the gradient check (bench/measure/gradients.py)
    grad_tolerance: float | None = None
    grad_mean_abs_err: float | None = None
    grad_mean_tolerance: float | None = None
    backend: str = ""
    compile_ms: float | None = None
    export_ms: float | None = None
    gflop: float | None = None  # counted where no formula gives it: a model's, by torch.utils.flop_counter
    params: int | None = None  # a model's parameter count

    def to_columns(self) -> dict[str, object]:
        """Return the results columns this record fills: every observation but the block times (not a column)."""
        return {name: value for name, value in asdict(self).items() if name != "block_ms"}

    def to_message(self) -> dict[str, object]:
        """Return the record as JSON-ready fields."""
        return {**asdict(self), "block_ms": list(self.block_ms)}


_HINTS = typing.get_type_hints(Measured)
_ACCEPTS = {str: (str,), float | None: (int, float, type(None)), int | None: (int, type(None)), tuple[float, ...]: (list, tuple)}


def from_message(message: dict[str, object]) -> Measured:
    """Return the record of a message's fields, every value checked against its field's type; RecordError otherwise."""
    unknown = sorted(set(message) - set(_HINTS))
    if unknown:
        raise RecordError(f"field(s) a result may not have: {', '.join(unknown[:3])}")
    for name, value in message.items():
        accepted = _ACCEPTS[_HINTS[name]]
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise RecordError(f"field {name} of a result has a {type(value).__name__}")
    blocks = message.get("block_ms", ())
    if not all(isinstance(ms, (int, float)) and not isinstance(ms, bool) for ms in blocks):
        raise RecordError("block_ms of a result is not a list of numbers")
    if message.get("status") not in STATUSES:
        raise RecordError(f"a result has no valid status: {str(message.get('status'))[:40]!r}")
    return Measured(**{**message, "block_ms": tuple(float(ms) for ms in blocks)})


