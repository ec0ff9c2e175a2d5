"""Worker side of case isolation: a subprocess that measures the cases its parent sends.

Started by bench.execution.isolation (never by hand) as `python -c BOOT SYS_PATH [--plugin M ...]`
(bench.execution.protocol), or forked from a zygote started the same way (bench/execution/zygote.py):
it takes the parent's sys.path, imports torch, the variants and the plugins once, says it is
ready, then reads one task per line on stdin and writes one result per line on the result fd.
It imports the protocol and bench.measure, never the sweep.
A Python failure of a case becomes a row here; a crash, a hang or a memory blow-up kills this
process, and the parent turns that into the row instead.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import os
import resource
import select
import signal
import socket
import sys
import traceback

from bench.execution import hygiene
from bench.execution.contract import as_case
from bench.execution.protocol import EXIT_CANNOT_FORK, EXIT_STARTUP_FAILED, Task, decode_task, encode_ready, encode_result
from bench.measure.record import Measured


def _die_with_sweep(lifeline_fd: int) -> int:
    # A sweep killed by SIGKILL cannot kill its worker. So a small process forked here (it touches
    # nothing of torch, so forking is safe even after torch's import) waits for the sweep's end of the lifeline
    # pipe to close, then kills every process below the worker (daemons included: the worker is
    # their subreaper) and the worker's whole process group: nothing a case started outlives the sweep.
    worker = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            while os.read(lifeline_fd, 1):
                pass
        finally:
            try:
                if os.getppid() == worker:  # else the worker is gone and this process was adopted: not ours to clear
                    import psutil

                    for process in psutil.Process(worker).children(recursive=True):
                        if process.pid != os.getpid():
                            process.kill()
            finally:
                os.killpg(0, signal.SIGKILL)
                os._exit(0)
    os.close(lifeline_fd)
    return pid


def _limit_address_space(device: str, max_memory_bytes: int | None) -> None:
    # CPU cases: allocation past the cap fails inside the case (MemoryError or the allocator's
    # RuntimeError), which the row records as `oom`. Not for GPU cases: CUDA reserves far more
    # virtual address space than it uses, so a limit on it would break CUDA itself.
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = hard
    if max_memory_bytes is not None and device == "cpu":
        import psutil

        wanted = psutil.Process().memory_info().vms + max_memory_bytes
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_task(task: Task) -> Measured:
    """Return what measuring one task (a case and its settings) observed, failures included."""
    import torch

    from attention_variants.case import Case
    from bench.measure.case import measure_case, prime_case, release_memory
    from bench.measure.failures import classify
    from bench.measure.settings import Settings

    settings = Settings(**task.settings)
    torch.set_num_threads(settings.threads)
    if task.case.get("scope") == "model":  # a whole backbone (bench.models), not one attention call
        from bench.models.measure import ModelCase, measure_model

        case, measure = ModelCase(**task.case), measure_model
    else:
        try:
            case = as_case(Case, task.case)
        except (TypeError, ValueError) as err:  # an A/B base's Case that cannot express this case
            return Measured("skipped", str(err))
        measure = prime_case if task.prime else measure_case
    measured = Measured("error", "the case did not finish")
    try:
        _limit_address_space(case.device, task.max_memory_bytes)
        measured = measure(case, settings)
    except BaseException as err:  # a variant calling sys.exit is a row too
        measured = Measured(*classify(err))
    finally:
        _limit_address_space(case.device, None)
    release_memory(case, measured.status)
    return measured


def _preload_missing() -> str | None:
    # A library that cannot be preloaded is skipped by the dynamic loader with only a warning: the
    # rows would then claim an allocator they did not run under. Check that it is really mapped.
    wanted = [path for path in os.environ.get("LD_PRELOAD", "").split() if path]
    try:
        maps = open("/proc/self/maps").read()
    except OSError:
        return None  # not Linux: nothing to check against
    missing = [path for path in wanted if os.path.basename(path) not in maps]
    return f"worker failed to start: LD_PRELOAD {', '.join(missing)} is not loaded" if missing else None


def _import_plugins(plugins: list[str]) -> str | None:
    import importlib

    from bench.messages import first_line

    for module in plugins:
        try:
            importlib.import_module(module)
        except BaseException as err:  # reported to the parent through the log, in one line
            return f"plugin {module!r} failed to import in the worker: {type(err).__name__}: {first_line(err)}"
    return None


def main(argv: list[str]) -> int:
    """Serve tasks from stdin until it closes (or, as the zygote, fork workers until the sweep ends); return the exit
    status."""
    parser = argparse.ArgumentParser(prog="bench.worker")
    parser.add_argument("--result-fd", type=int)
    parser.add_argument("--zygote-fd", type=int, help="fork a worker per request on this socket (bench/execution/zygote.py)")
    parser.add_argument("--lifeline-fd", type=int, required=True)
    parser.add_argument("--plugin", action="append", default=[])
    args = parser.parse_args(argv)
    if args.zygote_fd is None:
        hygiene.become_subreaper()
    lifeline = frozenset({_die_with_sweep(args.lifeline_fd)})
    faulthandler.enable()  # a segfault or abort leaves "Fatal Python error: ..." in the log
    import attention_variants  # noqa: F401  the import cost is paid once per worker (or zygote), not per case
    import bench.measure.case  # noqa: F401

    problem = _preload_missing() or _import_plugins(args.plugin)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_STARTUP_FAILED
    gc.freeze()  # what the imports made is never garbage: each case's collection (release_memory) skips it, 0.13 s -> 0 s
    if args.zygote_fd is not None:
        return _serve_forks(socket.socket(fileno=args.zygote_fd))
    return _serve(args.result_fd, lifeline)


def _serve(result_fd: int, lifeline: frozenset[int]) -> int:
    results = os.fdopen(result_fd, "w", buffering=1)
    results.write(encode_ready(os.getpid()))
    clean = hygiene.snapshot()
    for line in sys.stdin:
        task = decode_task(line)
        measured = run_task(task)
        hygiene.restore(clean, keep=lifeline)  # before the answer: the next case starts from a clean process
        results.write(encode_result(measured, task.token))
    return 0


def _serve_forks(control: socket.socket) -> int:
    """As the zygote: fork a worker for each request on the control socket until the sweep closes it, and report each
    worker's pid, its end (its exit status), and each stop or continue (which the fidelity command waits for)."""
    import torch

    if torch.cuda.is_initialized():  # a forked child cannot use CUDA initialised before the fork
        print("an import initialised CUDA; workers are started plainly instead of forked", file=sys.stderr)
        return EXIT_CANNOT_FORK
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # the default ignores it: no wake-up byte
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    forked: dict[int, int] = {}  # pid -> request number
    requests = 0
    try:
        while True:
            readable = select.select([control, wake_read], [], [])[0]
            if wake_read in readable:
                os.read(wake_read, 4096)
                _report_children(control, forked)
            if control in readable:
                message, fds, _, _ = socket.recv_fds(control, 64, 4)
                if not message:
                    return 0  # the sweep is done
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    os._exit(_become_worker(control, (wake_read, wake_write), fds))
                for fd in fds:
                    os.close(fd)
                forked[pid], requests = requests, requests + 1
                control.send(f"forked {forked[pid]} {pid}".encode())
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the sweep is gone


def _report_children(control: socket.socket, forked: dict[int, int]) -> None:
    """Reap the workers that ended and report them; report those that stopped or continued."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED | os.WCONTINUED)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid not in forked:
            continue  # the zygote's own lifeline watcher
        if os.WIFSTOPPED(status) or os.WIFCONTINUED(status):
            control.send(f"changed {forked[pid]} 0".encode())
        else:
            control.send(f"exit {forked.pop(pid)} {os.waitstatus_to_exitcode(status)}".encode())


def _become_worker(control: socket.socket, wake: tuple[int, int], fds: list[int]) -> int:
    """In a child the zygote forked: become a worker on the descriptors the sweep sent (stdin, results, lifeline, log)."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        control.close()
        for fd in wake:
            os.close(fd)
        stdin_fd, result_fd, lifeline_fd, log_fd = fds
        os.setsid()  # its own process group and session, as a worker started plainly: the parent kills the group
        os.dup2(stdin_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(stdin_fd)
        os.close(log_fd)
        hygiene.become_subreaper()
        return _serve(result_fd, frozenset({_die_with_sweep(lifeline_fd)}))
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
