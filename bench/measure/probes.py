"""What a run asks of the machine before it measures, begun at start-up: the CPU's name and a sample of the load.

py-cpuinfo takes about a second (it runs cpuid in a child process) and the load sample half a
second of watching; begun by bench.entry while the run imports torch, both are ready when the
sweep prints its first line. Imports no torch.
"""

from __future__ import annotations

import platform
import threading
import time

import psutil

_cpu: dict[str, str] = {}
_cpu_lookup: list[threading.Thread] = []
_sample: dict[str, object] = {}  # "started": monotonic time, "processes": those watched
STALE_S = 10.0  # a sample begun longer ago than this is begun again


def start() -> None:
    """Begin both probes (again: a no-op)."""
    if not _cpu_lookup:
        _cpu_lookup.append(threading.Thread(target=_look_up_cpu, daemon=True))
        _cpu_lookup[0].start()
    if not _sample:
        _start_sample()


def _look_up_cpu() -> None:
    import cpuinfo

    info = cpuinfo.get_cpu_info()
    brand = info.get("brand_raw") or platform.processor() or "unknown cpu"
    # A VM's brand string is often generic ("AMD EPYC", "Intel(R) Xeon(R) Processor") and the VM moves between
    # hosts: the family and model tell an AVX2-only host from an AVX-512 one (x86; other CPUs have neither).
    model = f"family {info['family']} model {info['model']}, " if "family" in info and "model" in info else ""
    _cpu["name"] = f"{brand} ({model}{psutil.cpu_count(logical=False)} cores / {psutil.cpu_count()} threads)"


def cpu_name() -> str:
    """Return the CPU's brand string with its family and model (x86) and its core counts."""
    start()
    _cpu_lookup[0].join()
    return _cpu.get("name", platform.processor() or "unknown cpu")


def _start_sample() -> None:
    processes = list(psutil.process_iter(["name"]))
    for process in processes:
        try:
            process.cpu_percent(None)  # the first call only starts the sample
        except psutil.Error:
            pass
    _sample.update(started=time.monotonic(), processes=processes)


def _percent(watched: psutil.Process | None, process: psutil.Process) -> float:
    """Return a process's CPU use since the sample began, or since it started if it started later."""
    if watched is not None:
        return watched.cpu_percent(None)
    times = process.cpu_times()
    age = time.time() - process.create_time()
    return 100 * (times.user + times.system) / age if age > 0.05 else 0.0


def busy_report(sample_s: float = 0.5, busy_percent: float = 20.0) -> str:
    """Return a warning naming what keeps this machine busy (load average, other processes using busy_percent of a CPU
    over at least the last sample_s seconds), or '' when it is quiet. This process and its children do not count.

    Load from other processes slows some cases and not others; the sweep warns before it starts.
    """
    if _sample and time.monotonic() - _sample["started"] > STALE_S:
        _sample.clear()  # begun long ago: processes started since would go unseen
    start()
    time.sleep(max(0.0, _sample["started"] + sample_s - time.monotonic()))
    cores = psutil.cpu_count() or 1
    load = psutil.getloadavg()[0]
    mine = {psutil.Process().pid, *(child.pid for child in psutil.Process().children(recursive=True))}
    watched = {process.pid: process for process in _sample.pop("processes")}
    busy = []
    for process in psutil.process_iter(["name"]):
        try:
            percent = _percent(watched.get(process.pid), process)
        except psutil.Error:
            continue
        if percent >= busy_percent and process.pid not in mine:
            busy.append(f"{process.info['name']} (pid {process.pid}, {percent:.0f}% CPU)")
    _sample.clear()  # the next report samples afresh
    if load < 0.5 * cores and not busy:
        return ""
    return f"the machine is not quiet: load average {load:.1f} on {cores} CPUs" + (f"; busy: {', '.join(busy[:3])}" if busy else "")
