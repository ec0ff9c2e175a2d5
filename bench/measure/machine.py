"""The machine a case runs on: the fingerprint recorded in every row, and which devices are usable here."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

import torch

from attention_variants.natten import NATTEN_VERSION
from bench.measure.probes import cpu_name

REPO = Path(__file__).resolve().parent.parent


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
