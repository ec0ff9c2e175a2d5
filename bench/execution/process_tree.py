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
    """Return the bytes of the process's private writable memory that are not resident (pages that may become resident
    unseen): VmData + VmStk - RssAnon of /proc/PID/status (Linux; 0 elsewhere).

    Shared and read-only file mappings are left out: a CUDA build of torch maps gigabytes of shared
    libraries, and counting them let a case grow by that much more before the memory watch saw it
    (a runaway child then hit the case timeout instead of being named out of memory). One read of
    status costs ~0.1 ms; summing /proc/PID/smaps per mapping cost ~30 ms per case.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        kib = {name: int(fields[name].split()[0]) for name in ("VmData", "VmStk", "RssAnon")}
    except (OSError, KeyError, ValueError):
        return 0
    return max(0, kib["VmData"] + kib["VmStk"] - kib["RssAnon"]) * 1024


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
