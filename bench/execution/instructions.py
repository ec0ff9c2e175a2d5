"""Instruction counts of one call of a variant, under Callgrind, through torch.utils.benchmark.

Times on a shared 2-core machine move by 10 % between minutes; the number of instructions a
call executes does not (to well under 1 %), so the A/B gate uses it as a second, deterministic
signal. `Timer.collect_callgrind` runs the statement in a fresh Python under valgrind; the
setup puts the side's tree first on sys.path, so the count is of that side's variant code.
One valgrind process per side, both at once (each is single-threaded).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from attention_variants.case import Case

CALLS = 3  # calls per count; the count reported is per call
# One valgrind process per side counts every case: importing torch under valgrind takes 30-50 s
# uninstrumented (150 s instrumented, see _VALGRIND_SHIM), a call of a small case well under a
# second. collect_callgrind runs `number` warm-up calls, then `repeats` blocks of `number` calls,
# one dump per block; `step()` maps the k-th call to its case, so block i counts case i (the
# warm-up calls go to case 0).
SETUP = """
import os, platform, sys
sys.path.insert(0, {root!r})
if platform.machine() in ("x86_64", "AMD64"):  # valgrind decodes no AVX-512: count local-tiled's AVX2 build
    os.environ["LOCAL_TILED_MARCH"] = "x86-64-v3"
import torch
import attention_variants as av
from attention_variants.case import Case
torch.set_grad_enabled(False)
import json
jobs, failures = [], {{}}
for name, shape, kernel_size in {cases!r}:
    case = Case(variant=name, batch=shape[0], heads=shape[1], height=shape[2], width=shape[3], head_dim=shape[4], kernel_size=kernel_size)
    generator = torch.Generator().manual_seed(1234)
    q, k, v = (torch.randn(shape, generator=generator) for _ in range(3))
    try:
        prepared = av.get(name).build(case, q, k, v)
        for _ in range(2):  # first-call work (lazy initialisation, caches) is not the variant's steady cost
            prepared.fn(*prepared.inputs)
        jobs.append((prepared.fn, prepared.inputs))
    except Exception as err:  # this case gets no count; the others still do
        failures[name] = type(err).__name__ + ": " + (str(err).strip().splitlines() or [""])[0]
        jobs.append((lambda: None, ()))
with open({failures_path!r}, "w") as file:
    json.dump(failures, file)
if {start_library!r}:  # valgrind started uninstrumented (_VALGRIND_SHIM): instrument from here on
    import ctypes
    ctypes.CDLL({start_library!r}).start_instrumentation()  # a no-op outside valgrind (torch runs setup once here too)
calls = [0]
def step():
    block = max(calls[0] - {calls}, 0) // {calls}
    calls[0] += 1
    fn, inputs = jobs[block]
    fn(*inputs)
"""


@dataclass(frozen=True)
class Count:
    """One side's instruction count for one case: instructions per call, or why there is none."""

    side: str
    case: Case
    per_call: float | None
    problem: str = ""


def unavailable() -> str | None:
    """Return why Callgrind cannot run here (valgrind missing), or None."""
    return None if shutil.which("valgrind") else "valgrind is not installed (Debian: apt-get install valgrind)"


# collect_callgrind starts valgrind with --instr-atstart=yes, so all of torch's import runs
# instrumented: 150 s a process here, against 30-50 s uninstrumented. Where a C compiler builds
# the client request that switches instrumentation on (valgrind's callgrind.h), this stand-in for
# valgrind starts it uninstrumented and SETUP calls that request once the cases are built. The
# counts agree within 0.1 % (a 64x64 matmul both ways, 2026-12-03), as close as two blocks of one
# run. (callgrind_control --instr=on does the same through vgdb, but then torch's own
# `callgrind_control --stat` check failed in about one process of four.)
_VALGRIND_SHIM = """#!/bin/sh
for arg do
  shift
  [ "$arg" = "--instr-atstart=yes" ] && arg="--instr-atstart=no"
  set -- "$@" "$arg"
done
exec {valgrind} "$@"
"""
# torch checks that its process runs under Callgrind by finding it in `callgrind_control --stat`, which lists every
# Callgrind process; callgrind_control 3.19 stops listing at the first one whose instrumentation is off, as the
# other side's is while it sets up, so the check failed in 2 of 6 paired runs (2026-12-04). This stand-in asks about the
# caller (the shell's parent) only.
_CALLGRIND_CONTROL_SHIM = """#!/bin/sh
[ "$*" = "--stat" ] && set -- --stat "$PPID"
exec {callgrind_control} "$@"
"""
_START_INSTRUMENTATION_C = "#include <valgrind/callgrind.h>\nvoid start_instrumentation(void) { CALLGRIND_START_INSTRUMENTATION; }\n"


def _start_instrumentation_library(folder: Path) -> Path | None:
    """Build the one-function library whose client request starts Callgrind's instrumentation; None without a
    C compiler or valgrind's headers (then the whole run is instrumented: slower, the same counts)."""
    from attention_variants.local_tiled import compiler

    source, library = folder / "start_instrumentation.c", folder / "libstart_instrumentation.so"
    source.write_text(_START_INSTRUMENTATION_C)
    cc = compiler()
    built = cc and subprocess.run([cc, "-shared", "-fPIC", "-O1", str(source), "-o", str(library)],
                                  capture_output=True).returncode == 0
    return library if built else None


@contextlib.contextmanager
def _valgrind_and_this_python_first_on_path():
    """Yield the instrumentation-starting library (or None), with this interpreter's folder and, given that
    library, the valgrind and callgrind_control stand-ins first on PATH: collect_callgrind runs `python`,
    `valgrind` and `callgrind_control` from PATH, and `python` without an activated virtual environment is
    another one (without torch)."""
    saved = os.environ.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="bench-valgrind-") as folder:
        library = _start_instrumentation_library(Path(folder))
        if library:
            for name, text in (("valgrind", _VALGRIND_SHIM), ("callgrind_control", _CALLGRIND_CONTROL_SHIM)):
                shim = Path(folder) / name
                shim.write_text(text.format(**{name: shlex.quote(shutil.which(name) or name)}))
                shim.chmod(0o755)
        os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), *([folder] if library else []), saved])
        try:
            yield library
        finally:
            os.environ["PATH"] = saved


def count_side(side: str, root: Path, cases: list[Case], start_library: Path | None = None) -> list[Count]:
    """Return the instructions per call of every case's variant as the tree at root has it, from one valgrind run;
    start_library, if given, switches instrumentation on after the setup (valgrind started without it)."""
    from torch.utils import benchmark  # only here: the gate's other paths need no torch

    spec = [(c.variant, (c.batch, c.heads, c.height, c.width, c.head_dim), c.kernel_size) for c in cases]
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as work:
        failures_path = Path(work) / "failures.json"
        setup = SETUP.format(root=str(root), cases=spec, calls=CALLS, failures_path=str(failures_path),
                             start_library=str(start_library or ""))
        try:
            stats = benchmark.Timer("step()", setup=setup, num_threads=1).collect_callgrind(
                number=CALLS, repeats=len(cases), collect_baseline=False)
        except (Exception, SystemExit) as err:  # valgrind itself failed: reported, never fatal
            lines = [line for line in str(err).splitlines() if line.strip()]
            return [Count(side, case, None, f"{type(err).__name__}: {lines[-1] if lines else ''}") for case in cases]
        failures = json.loads(failures_path.read_text())
    stats = stats if isinstance(stats, tuple) else (stats,)
    return [Count(side, case, None, failures[case.variant]) if case.variant in failures else
            Count(side, case, one.counts(denoise=True) / CALLS) for case, one in zip(cases, stats)]


def smallest_cases(rows: pd.DataFrame) -> list[Case]:
    """Return, per variant measured ok on both sides, its smallest CPU float32 forward case of the A/B rows."""
    ok = rows[(rows["status"] == "ok") & (rows["device"] == "cpu") & (rows["dtype"] == "float32") & (rows["pass"] == "forward")]
    both = ok.groupby("variant")["side"].nunique()
    ok = ok[ok["variant"].isin(both[both == 2].index)]
    ok = ok.assign(_size=ok["batch"] * ok["heads"] * ok["height"] * ok["width"] * ok["head_dim"])
    smallest = ok.sort_values(["_size", "kernel_size"], kind="stable").drop_duplicates("variant")
    return [Case(variant=r.variant, batch=int(r.batch), height=int(r.height), width=int(r.width), heads=int(r.heads),
                 head_dim=int(r.head_dim), kernel_size=int(r.kernel_size)) for r in smallest.itertuples()]


def count_all(roots: dict[str, Path], cases: list[Case]) -> list[Count]:
    """Return the count of every case under every side's root; the sides' valgrind processes run side by side."""
    with _valgrind_and_this_python_first_on_path() as start_library, ThreadPoolExecutor(max_workers=len(roots)) as pool:
        per_side = pool.map(lambda side: count_side(side, roots[side], cases, start_library), roots)
        return [count for counts in per_side for count in counts]
