"""The wire protocol between a sweep and its worker subprocess: how a worker starts, and the messages both send.

One JSON object per line. The parent writes tasks to the worker's stdin; the worker answers on
its result pipe, first `{"ready": pid}`, then one Measured record per task (bench/measure/record.py). Both sides
import this module (and nothing of each other); every message is validated on receipt.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, fields

from bench.measure.record import Measured, RecordError, from_message

# `python -c BOOT SYS_PATH [worker flags]`: the worker takes the parent's sys.path, then runs.
BOOT = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
        "from bench.execution.worker import main; sys.exit(main(sys.argv[2:]))")
EXIT_STARTUP_FAILED = 3  # the worker's exit status when it could not start (e.g. a plugin failed to import)
EXIT_CANNOT_FORK = 4  # the zygote's, when an import initialised CUDA, which a forked worker could not use


class ProtocolError(ValueError):
    """A message that does not follow this protocol; the message is one line."""


@dataclass(frozen=True)
class Task:
    """One case for a worker: the case's fields, the run's settings and the memory the case may add.

    With `prime`, the worker only builds the case and calls it once (paying the variant's lazy
    initialisation before anything is timed) and answers status `ok`, reason `primed`.
    """

    case: dict[str, object]
    settings: dict[str, object]
    max_memory_bytes: int | None = None
    prime: bool = False
    # Echoed in the answer: a line that does not carry it (printed by a case onto the result
    # pipe, or an answer meant for another task) is refused and blamed on the case running.
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


def encode_task(task: Task) -> bytes:
    """Return the task as one line of JSON."""
    return (json.dumps(asdict(task)) + "\n").encode()


def decode_task(line: str | bytes) -> Task:
    """Return the task of one line; ProtocolError when it is not one."""
    message = _json_object(line)
    expected = {f.name for f in fields(Task)}
    if set(message) != expected or not isinstance(message["case"], dict) or not isinstance(message["settings"], dict):
        raise ProtocolError(f"not a task: keys {sorted(message)} (expected {sorted(expected)})")
    return Task(**message)


def encode_ready(pid: int) -> str:
    """Return the line a worker sends once it can take tasks."""
    return json.dumps({"ready": pid}) + "\n"


def encode_result(measured: Measured, token: str) -> str:
    """Return the line that carries one task's record (bench/measure/record.py) and the task's token."""
    return json.dumps({**measured.to_message(), "token": token}) + "\n"


def decode_message(line: str | bytes, token: str | None = None) -> dict[str, object] | Measured:
    """Return a worker's message: {"ready": pid}, or the record of the task with this token; else ProtocolError."""
    message = _json_object(line)
    if set(message) == {"ready"}:
        return message
    if message.pop("token", None) != token:
        raise ProtocolError("a result line that does not answer the task running (printed by the case?)")
    try:
        return from_message(message)
    except RecordError as err:
        raise ProtocolError(str(err)) from None


def _json_object(line: str | bytes) -> dict[str, object]:
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as err:
        raise ProtocolError(f"not JSON: {err}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"not a JSON object: {type(message).__name__}")
    return message
