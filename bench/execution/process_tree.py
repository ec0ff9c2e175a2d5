"""What the parent reads of a worker's process tree from outside: resident memory, mapped memory, open descriptors."""

from __future__ import annotations

import psutil


def open_fds(pid: int) -> int:
    """Return how many descriptors the process has open (0 when it is gone)."""
    try:
        return psutil.Process(pid).num_fds()
    except (psutil.Error, AttributeError):  # gone, or not POSIX
        return 0


def mapped_not_resident(pid: int) -> int:
    """Return the bytes of the process's anonymous mappings that are not resident (pages that may become resident unseen).

    File-backed mappings are left out: a CUDA build of torch maps gigabytes of shared libraries,
    and counting them let a case grow by that much more before the memory watch saw it (a
    runaway child then hit the case timeout instead of being named out of memory).
    """
    try:
        mappings = psutil.Process(pid).memory_maps(grouped=False)
    except (psutil.Error, NotImplementedError, OSError):
        return 0
    return sum(max(0, m.size - m.rss) for m in mappings if not m.path or m.path in ("[heap]", "[stack]") or m.path.startswith("[anon"))


def tree_rss(pid: int) -> int:
    """Return the resident bytes of the process and all its descendants."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in family:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total
