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
    """Return the bytes the process has mapped but not resident (pages that may become resident unseen)."""
    try:
        memory = psutil.Process(pid).memory_info()
    except psutil.Error:
        return 0
    return max(0, memory.vms - memory.rss)


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
