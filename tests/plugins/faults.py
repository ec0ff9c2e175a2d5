"""Fault-injection variants for the reliability tests: import with `--plugin tests.plugins.faults`.

Each fails in one of the ways a real variant can, when its case is built (so inside the
worker): a Python exception, a hard crash (abort), a hang, an allocation without bound.
They are registered only by this module, never by attention_variants.
"""

from __future__ import annotations

import os
import time

import torch

from attention_variants.registry import Variant, register

CHUNK_ELEMENTS = 2**25  # 128 MiB of float32 per step


def _raises(case, q, k, v):
    raise RuntimeError("injected failure for the reliability tests\nthis second line must not reach the CSV")


def _aborts(case, q, k, v):
    os.abort()


def _sleeps_forever(case, q, k, v):
    while True:
        time.sleep(3600)


def _allocates_without_bound(case, q, k, v):
    held = []
    while True:  # each chunk is written, so it is resident, not just reserved
        held.append(torch.ones(CHUNK_ELEMENTS, device=case.device))


for _name, _build, _what in (
    ("fault-raises", _raises, "raises RuntimeError"),
    ("fault-aborts", _aborts, "calls os.abort() (SIGABRT)"),
    ("fault-hangs", _sleeps_forever, "sleeps forever"),
    ("fault-allocates", _allocates_without_bound, "allocates memory without bound"),
):
    register(Variant(_name, "local-zero-pad", _build, description=f"test fault: {_what}"))
