"""The machine a case runs on: the fingerprint recorded in every row, and which devices are usable here."""

from __future__ import annotations

import functools
import platform
import subprocess
import time
from pathlib import Path

import cpuinfo
import psutil
import torch

from attention_variants.natten import NATTEN_VERSION

REPO = Path(__file__).resolve().parent.parent


@functools.cache
def cpu_name() -> str:
    """Return the CPU's brand string with its core counts."""
    brand = cpuinfo.get_cpu_info().get("brand_raw") or platform.processor() or "unknown cpu"
    return f"{brand} ({psutil.cpu_count(logical=False)} cores / {psutil.cpu_count()} threads)"


def gpu_name() -> str:
    """Return the first CUDA device's name, or '' without one."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""


def device_name(device: str) -> str:
    """Return a human name for a device string (cpu, cuda, mps)."""
    if device.startswith("cuda"):
        return gpu_name() or "cuda (not available)"
    if device == "mps":
        return "Apple MPS"
    return cpu_name()


@functools.cache
def git_sha() -> str:
    """Return the short commit of the harness, with '-dirty' when the tree has changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        sha = git("rev-parse", "--short", "HEAD")
        return f"{sha}-dirty" if sha and git("status", "--porcelain", "--untracked-files=no") else sha
    except (OSError, subprocess.SubprocessError):
        return ""


def fingerprint(threads: int) -> dict[str, object]:
    """Return the machine columns of a results row."""
    return {
        "threads": threads,
        "host": platform.node(),
        "cpu": cpu_name(),
        "gpu": gpu_name(),
        "torch_version": torch.__version__,
        "natten_version": NATTEN_VERSION,
        "git_sha": git_sha(),
    }


def device_unavailable(device: str) -> str | None:
    """Return why `device` cannot be used on this machine, or None."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        return "cuda is not available on this machine"
    if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return "mps is not available on this machine"
    return None


def busy_report(sample_s: float = 0.5, busy_percent: float = 20.0) -> str:
    """Return a warning naming what keeps this machine busy (load average, busy processes), or '' when it is quiet.

    Load from other processes slows some cases and not others; the sweep warns before it starts.
    """
    cores = psutil.cpu_count() or 1
    load = psutil.getloadavg()[0]
    mine = {psutil.Process().pid, *(child.pid for child in psutil.Process().children(recursive=True))}
    processes = [p for p in psutil.process_iter(["name"]) if p.pid not in mine]
    for process in processes:
        try:
            process.cpu_percent(None)  # the first call only starts the sample
        except psutil.Error:
            pass
    time.sleep(sample_s)
    busy = []
    for process in processes:
        try:
            percent = process.cpu_percent(None)
        except psutil.Error:
            continue
        if percent >= busy_percent:
            busy.append(f"{process.info['name']} (pid {process.pid}, {percent:.0f}% CPU)")
    if load < 0.5 * cores and not busy:
        return ""
    return f"the machine is not quiet: load average {load:.1f} on {cores} CPUs" + (f"; busy: {', '.join(busy[:3])}" if busy else "")
