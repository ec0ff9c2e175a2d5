"""The C allocator a worker runs under: what each `--allocator` setting means and the environment that sets it.

Why this is an axis of its own: CPU timings of multi-megabyte intermediates depend on how
the allocator serves them. glibc's defaults adapt its mmap threshold to what was freed
earlier in the process, so one call may reuse warm memory while the same call in a fresh
process maps new pages and pays a page fault per 4 KiB (measured: Im2Col batch 1 at 56x56,
223 ms fresh, 29 ms after one earlier measurement). Each setting here is history-free, so a
case gives the same number whatever ran before it (docs/fidelity.md has the measurements).
Settings are applied when a worker starts (environment variables read by libc, or a
preloaded allocator), so every case of a sweep runs under the same one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from pathlib import Path

HUGE = 1 << 62  # a trim threshold no heap reaches: freed memory is never handed back


@dataclass(frozen=True)
class Allocator:
    """One allocator setting: glibc tunables, or a library to preload."""

    name: str
    meaning: str
    glibc_tunables: str = ""
    preload_library: str = ""  # soname looked up with ctypes.util.find_library


ALLOCATORS = {
    allocator.name: allocator for allocator in (
        Allocator("steady", "glibc with large blocks kept on the heap and never trimmed: after the warm-up, "
                  "calls reuse warm memory, as in a model's inner loop",
                  glibc_tunables=f"glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold={HUGE}"),
        Allocator("cold", "glibc with every block of 128 KiB or more a fresh mapping, returned on free: "
                  "each call pays its page faults, as a first call does",
                  glibc_tunables="glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072"),
        Allocator("jemalloc", "jemalloc preloaded (LD_PRELOAD), as torch.backends.xeon.run_cpu offers",
                  preload_library="jemalloc"),
        Allocator("tcmalloc", "tcmalloc (minimal) preloaded (LD_PRELOAD), as torch.backends.xeon.run_cpu offers",
                  preload_library="tcmalloc_minimal"),
    )
}
DEFAULT = "steady"


def library_path(allocator: Allocator) -> str | None:
    """Return the file of the allocator's preload library, or None when it is not installed."""
    if not allocator.preload_library:
        return None
    found = ctypes.util.find_library(allocator.preload_library)
    if found is None:
        return None
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"):
        if (Path(folder) / found).is_file():
            return str(Path(folder) / found)
    return found  # a bare soname: the dynamic loader searches for it itself


def unavailable(name: str) -> str | None:
    """Return why the allocator setting cannot be used here, or None."""
    allocator = ALLOCATORS.get(name)
    if allocator is None:
        return f"unknown allocator {name!r} (known: {', '.join(ALLOCATORS)})"
    if allocator.preload_library and library_path(allocator) is None:
        package = {"jemalloc": "libjemalloc2", "tcmalloc_minimal": "libtcmalloc-minimal4"}[allocator.preload_library]
        return f"allocator {name!r} is not installed here (Debian: apt-get install {package})"
    if allocator.glibc_tunables and not _is_glibc():
        return f"allocator {name!r} needs glibc (this C library is another)"
    return None


def environment(name: str, threads: int) -> dict[str, str]:
    """Return the variables a worker process starts with: the allocator, and every thread pool pinned to `threads`."""
    allocator = ALLOCATORS[name]
    env = {variable: str(threads) for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    if allocator.glibc_tunables:
        env["GLIBC_TUNABLES"] = allocator.glibc_tunables
    if allocator.preload_library:
        env["LD_PRELOAD"] = library_path(allocator) or ""
    return env


def _is_glibc() -> bool:
    try:
        return bool(ctypes.CDLL(None).gnu_get_libc_version)
    except (OSError, AttributeError):
        return False


def apply_in_process(name: str) -> str | None:
    """Set a glibc allocator setting in this running process (mallopt); return why it cannot be, or None.

    For --cases-per-worker 0 only: blocks this process mapped before keep their mapping, and a
    preloaded allocator can only be chosen when a process starts.
    """
    allocator = ALLOCATORS[name]
    if allocator.preload_library:
        return f"allocator {name!r} is preloaded when a worker starts: it needs --cases-per-worker 1 or more"
    options = dict(item.split("=") for item in allocator.glibc_tunables.split(":"))
    codes = {"glibc.malloc.trim_threshold": -1, "glibc.malloc.mmap_threshold": -3, "glibc.malloc.mmap_max": -4}
    libc = ctypes.CDLL(None)
    for option, value in options.items():
        libc.mallopt(codes[option], min(int(value), 2**31 - 1))  # mallopt takes an int
    return None
