"""Fault-injection variants for the reliability tests: import with `--plugin tests.plugins.faults`.

Each fails in one of the ways a real variant can, when its case is built (so inside the
worker): a Python exception, a hard crash (abort), a hang, an allocation without bound.
They are registered only by this module, never by attention_variants.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time

import torch

from attention_variants.registry import Variant, register

CHUNK_ELEMENTS = 2**25  # 128 MiB of float32 per step
PID_FILE = "FAULTS_PID_FILE"  # env var: where fault-hangs writes "worker_pid child_pid"
# A child that lifts the address-space limit it inherited and grows without bound: only the
# parent's watch on the worker's resident memory (children included) can stop it.
CHILD_HOG = """
import resource, time
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
held = []
while True:
    held.append(b"x" * (64 << 20))
    time.sleep(0.02)
"""


def _raises(case, q, k, v):
    raise RuntimeError("injected failure for the reliability tests\nthis second line must not reach the CSV")


def _aborts(case, q, k, v):
    os.abort()


def _sleeps_forever(case, q, k, v):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])  # a timeout must end it too
    if os.environ.get(PID_FILE):
        with open(os.environ[PID_FILE], "w") as pid_file:
            pid_file.write(f"{os.getpid()} {child.pid}")
    while True:
        time.sleep(3600)


def _allocates_without_bound(case, q, k, v):
    held = []
    while True:  # each chunk is written, so it is resident, not just reserved
        held.append(torch.ones(CHUNK_ELEMENTS, device=case.device))


def _allocates_in_child(case, q, k, v):
    subprocess.run([sys.executable, "-c", CHILD_HOG])


def _result_fd() -> int:
    """Find the worker's result pipe as a hostile case would: the one pipe this process may write to."""
    for name in os.listdir("/proc/self/fd"):
        try:
            writable = os.readlink(f"/proc/self/fd/{name}").startswith("pipe:") and \
                fcntl.fcntl(int(name), fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
        except OSError:
            continue
        if writable:
            return int(name)
    raise RuntimeError("no result pipe found")


def _writes_junk(case, q, k, v):
    os.write(_result_fd(), b"this is not JSON\n")
    raise RuntimeError("wrote junk on the result pipe")


def _forges_a_row(case, q, k, v):
    forged = {"variant": "im2col", "run_id": "forged", "status": "ok", "reason": "", "median_ms": 0.001}
    os.write(_result_fd(), (json.dumps(forged) + "\n").encode())  # well-formed, for another case
    os.write(_result_fd(), (json.dumps({"status": "ok", "reason": "", "median_ms": 0.001}) + "\n").encode())
    from attention_variants.im2col import build
    return build(case, q, k, v)


def _litters(case, q, k, v):
    os.chdir("/")
    os.environ["FAULTS_LITTER"] = "left behind"
    if os.fork() == 0:  # a daemon: double fork, own session
        os.setsid()
        if os.fork() == 0:
            if os.environ.get(PID_FILE):
                with open(os.environ[PID_FILE], "w") as pid_file:
                    pid_file.write(str(os.getpid()))
            time.sleep(3600)
        os._exit(0)
    time.sleep(0.5)  # the daemon has written its pid
    from attention_variants.im2col import build
    return build(case, q, k, v)


def _inspects(case, q, k, v):
    left = [what for what, found in (("a working directory", os.getcwd() == "/"),
                                     ("an environment variable", "FAULTS_LITTER" in os.environ)) if found]
    if left:
        raise RuntimeError(f"an earlier case left {' and '.join(left)} behind")
    from attention_variants.im2col import build
    return build(case, q, k, v)


_LEAKED: list[object] = []


def _leaks_fds(case, q, k, v):
    _LEAKED.extend(open(os.devnull) for _ in range(200))
    from attention_variants.im2col import build
    return build(case, q, k, v)


def _counts_fds(case, q, k, v):
    if len(os.listdir("/proc/self/fd")) > 150:
        raise RuntimeError(f"{len(os.listdir('/proc/self/fd'))} descriptors open: an earlier case leaked them")
    from attention_variants.im2col import build
    return build(case, q, k, v)


def _results_file() -> str:
    return os.environ["FAULTS_RESULTS_FILE"]  # the CSV the sweep appends to, named by the test


def _locks_results(case, q, k, v):
    import fcntl

    if not _LEAKED:  # build runs more than once per case (oracle check, timing): lock once
        handle = open(_results_file(), "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        _LEAKED.append(handle)  # held after the case returns, in the worker
    from attention_variants.im2col import build
    return build(case, q, k, v)


def _truncates_results(case, q, k, v):
    with open(_results_file(), "r+") as handle:
        handle.truncate(100)
    from attention_variants.im2col import build
    return build(case, q, k, v)


def _appends_junk_to_results(case, q, k, v):
    with open(_results_file(), "a") as handle:
        handle.write("junk, not a row\n")
    from attention_variants.im2col import build
    return build(case, q, k, v)


for _name, _build, _what in (
    ("fault-raises", _raises, "raises RuntimeError"),
    ("fault-aborts", _aborts, "calls os.abort() (SIGABRT)"),
    ("fault-hangs", _sleeps_forever, "sleeps forever"),
    ("fault-allocates", _allocates_without_bound, "allocates memory without bound"),
    ("fault-allocates-in-child", _allocates_in_child, "starts a process that allocates without bound"),
    ("fault-writes-junk", _writes_junk, "writes a junk line on the worker's result pipe"),
    ("fault-forges-a-row", _forges_a_row, "writes well-formed rows for another case on the result pipe"),
    ("fault-litters", _litters, "changes directory and environment and leaves a daemon behind"),
    ("fault-inspects", _inspects, "fails when an earlier case left its directory or environment behind"),
    ("fault-leaks-fds", _leaks_fds, "leaves 200 open files behind"),
    ("fault-counts-fds", _counts_fds, "fails when more than 150 descriptors are open"),
    ("fault-locks-results", _locks_results, "takes the results file's lock and keeps it"),
    ("fault-truncates-results", _truncates_results, "truncates the results file"),
    ("fault-appends-junk", _appends_junk_to_results, "appends a junk line to the results file"),
):
    register(Variant(_name, "local-zero-pad", _build, description=f"test fault: {_what}"))
