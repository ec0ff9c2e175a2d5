"""Failure classes: an exception raised by a case becomes a status (`oom` or `error`) and a one-line reason."""

from __future__ import annotations

import torch

from bench.messages import first_line

# Allocation failures that torch and the C++ runtime report as RuntimeError rather than MemoryError.
ALLOCATION_FAILURES = ("out of memory", "can't allocate memory", "cannot allocate memory", "std::bad_alloc")


def classify(err: BaseException) -> tuple[str, str]:
    """Return the status (`oom` or `error`) and the reason of a case that raised err."""
    out_of_memory = isinstance(err, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(err, RuntimeError) and any(text in str(err).lower() for text in ALLOCATION_FAILURES))
    return ("oom" if out_of_memory else "error"), f"{type(err).__name__}: {first_line(err)[:300]}"

