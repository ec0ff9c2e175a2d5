"""A sweep's workers: at most one live worker at a time, forked from the pool's zygote, replaced as isolation asks."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from bench.execution.hygiene import LEAKED_FDS
from bench.execution.isolation import RETIRE_AFTER, Isolation, Worker
from bench.execution.process_tree import open_fds
from bench.execution.protocol import EXIT_CANNOT_FORK, Task
from bench.measure.record import Measured


class WorkerPool:
    """At most one live worker: started on demand (forked from the pool's zygote), replaced after a failure or
    `cases_per_worker` cases."""

    def __init__(self, isolation: Isolation, started: Worker | None = None) -> None:
        self.isolation = isolation
        self.log_dir = tempfile.TemporaryDirectory(prefix="bench-workers-")
        self.worker: Worker | None = started  # a worker of this isolation already starting (bench/execution/early.py)
        self.zygote = started.zygote if started is not None else None
        self.served = 0
        self.unready = started is not None  # launched, not yet waited for
        self.primes: list[dict[str, object]] = []
        self.prime_settings: dict[str, object] = {}

    def _new_worker(self) -> Worker:
        log_dir = Path(self.log_dir.name)
        if not self.isolation.forked:
            return Worker(self.isolation, log_dir)
        if self.zygote is None or not self.zygote.alive():  # a zygote that died (killed by hand?) is replaced
            if self.zygote is not None:
                self.zygote.close()
            self.zygote = self.isolation.zygote(log_dir)
        return Worker(self.isolation, log_dir, self.zygote)

    def launch(self, prime: list[dict[str, object]] = (), task_settings: dict[str, object] | None = None) -> None:
        """Start a worker now without waiting for it, and queue a first, untimed call of each case of prime.

        Pools launched one after the other start their workers at the same time; `ready` then
        waits for each. A worker that dies while priming is replaced by the next `measure`.
        """
        if self.worker is None:
            self.worker, self.served, self.unready = self._new_worker(), 0, True
            self.primes, self.prime_settings = list(prime), task_settings or {}
            for case in self.primes:
                self.worker.send(Task(case, self.prime_settings, self.worker.cap, prime=True))

    def ready(self) -> Measured | None:
        """Wait until the launched worker has started and primed; return the failure record when it never started."""
        if self.worker is None or not self.unready:
            return None
        failure = self.worker.start()
        if failure and self.zygote is not None and self.zygote.process.poll() == EXIT_CANNOT_FORK:
            self.retire()
            self.isolation = replace(self.isolation, forked=False)
            self.launch(self.primes, self.prime_settings)
            return self.ready()
        if failure:
            self.retire()
            return failure
        self.unready = False
        for case in self.primes:
            if self.worker.receive(case).status in RETIRE_AFTER:  # the measurement proper will say what went wrong
                self.retire()
                break
        return None

    def measure(self, case: dict[str, object], task_settings: dict[str, object]) -> Measured:
        """Return what measuring the case (its fields) in a worker observed."""
        self.launch()
        failure = self.ready()
        if failure:
            return failure
        measured = self.worker.run(case, task_settings)
        self.served += 1
        leaked = open_fds(self.worker.process.pid) - self.worker.fds_at_start > LEAKED_FDS  # e.g. a case that opens files
        if measured.status in RETIRE_AFTER or self.served >= self.isolation.cases_per_worker or leaked:
            self.retire()
        return measured

    def retire(self) -> None:
        """Stop the current worker, if any."""
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.retire()
        if self.zygote is not None:
            self.zygote.close()
        self.log_dir.cleanup()
