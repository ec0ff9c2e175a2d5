"""Peak memory of one call.

CUDA: torch.cuda.max_memory_allocated after a reset, minus what was allocated before (the
caching allocator's own view, so exact for tensors). CPU (Linux): the process's peak
resident set (VmHWM) after resetting it through /proc/self/clear_refs, minus the resident
set before the call; malloc_trim first hands freed heap pages back to the OS so that the
growth is real. That counts every byte the call touches, tensors and scratch alike.
"""

from __future__ import annotations

import ctypes
import math
import re
import sys
from pathlib import Path
from typing import Callable

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    return int(match.group(1)) / 1024 if match else math.nan


def _cpu_peak_mb(fn: Callable[[], object]) -> float:
    if not sys.platform.startswith("linux"):
        return math.nan
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        _CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident set
    except OSError:
        return math.nan
    before = _status_mb("VmRSS")
    fn()
    return max(0.0, _status_mb("VmHWM") - before)


def _cuda_peak_mb(fn: Callable[[], object]) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def peak_memory_mb(fn: Callable[[], object], device: str) -> float:
    """Return the extra memory (MiB) one call of fn needs at its peak; NaN where not measurable."""
    if device.startswith("cuda"):
        return _cuda_peak_mb(fn)
    if device == "cpu":
        return _cpu_peak_mb(fn)
    return math.nan
