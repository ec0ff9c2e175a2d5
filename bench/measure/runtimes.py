"""The runtimes a variant runs under: eager, torch.compile, torch.export + AOTInductor, ONNX Runtime.

Each turns the variant's `fn(*inputs)` into a callable with the same signature. export and
onnxruntime trace the forward once for the case's static shapes (inference only) and record
what the export cost (`export_ms`) apart from the timed calls.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from attention_variants.case import Case
from bench.messages import first_line

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # "<... object at 0x7f...>": differs every run, says nothing


class RuntimeFailure(RuntimeError):
    """A runtime that could not take the variant; the message names the step and the exporter's first line."""


@dataclass(frozen=True)
class Runnable:
    """A callable under a runtime, and what the export cost to make it (export and onnxruntime only)."""

    fn: Callable[..., object]
    export_ms: float | None = None  # torch.export or the ONNX export (not compile, not the first call)


def runtime_unavailable(case: Case) -> str | None:
    """Return why the harness cannot run the case under its runtime (None when it can)."""
    if case.runtime in ("export", "onnxruntime") and case.needs_grad:
        return f"{case.runtime} runs inference only: forward, no backward"
    if case.runtime == "export" and not _has_aoti_packages():
        return "the export runtime needs torch >= 2.6 (torch._inductor.aoti_compile_and_package)"
    if case.runtime == "onnxruntime":
        if case.device != "cpu":
            return "onnxruntime is measured with its CPU execution provider only"
        missing = [name for name in ("onnxruntime", "onnxscript") if importlib.util.find_spec(name) is None]
        if missing:
            return f"{' and '.join(missing)} not installed (pip install 'local-attention-bench[onnx]')"
        if case.dtype == "bfloat16":
            return "ONNX Runtime's Python API takes numpy arrays, and numpy has no bfloat16"
    return None


def _has_aoti_packages() -> bool:
    try:
        from torch._inductor import aoti_compile_and_package, aoti_load_package  # noqa: F401
    except ImportError:
        return False
    return True


def runnable(fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...], case: Case, threads: int) -> Runnable:
    """Return fn under the case's runtime; export and onnxruntime export it here (RuntimeFailure when they cannot)."""
    if case.runtime == "eager":
        return Runnable(fn)
    if case.runtime == "inductor":
        # A fresh dynamo state per case: otherwise a worker's second case of the same variant
        # reuses the first one's frame cache, gets a dynamic-shape recompile (slower, generic
        # kernels) and, past the recompile limit, silently falls back to eager.
        # Static shapes: a model's check runs one image, its timing the batch; neither may turn the other generic.
        torch._dynamo.reset()
        return Runnable(torch.compile(fn, dynamic=False))
    module = _AsModule(fn).eval()
    if case.runtime == "export":
        return _aoti(module, inputs)
    if case.runtime == "onnxruntime":
        return _onnxruntime(module, inputs, threads)
    raise ValueError(f"unknown runtime {case.runtime!r}")


class _AsModule(torch.nn.Module):
    """The exporters take modules: the variant's closure as forward."""

    def __init__(self, fn: Callable[..., torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(*inputs)


def _step(name: str, call: Callable[[], object]) -> object:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporters' advice (deprecations, untraceable builtins) is not data
            return call()
    except Exception as err:
        raise RuntimeFailure(f"{name} failed: {root_line(err)}") from err


def root_line(err: BaseException) -> str:
    """Return the first line of the innermost cause of err (exporters wrap the real reason), without colour codes."""
    while err.__cause__ is not None:
        err = err.__cause__
    line = ADDRESS.sub("", ANSI.sub("", first_line(err))).strip()
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def _aoti(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> Runnable:
    from torch._inductor import aoti_compile_and_package, aoti_load_package

    started = time.perf_counter()
    program = _step("torch.export", lambda: torch.export.export(module, inputs))
    export_ms = (time.perf_counter() - started) * 1e3
    with tempfile.TemporaryDirectory(prefix="bench-aoti-") as folder:
        package = _step("AOTInductor", lambda: aoti_compile_and_package(program, package_path=str(Path(folder) / "attention.pt2")))
        runner = _step("AOTInductor load", lambda: aoti_load_package(package))

    def call(*xs: torch.Tensor) -> torch.Tensor:
        out = runner(*xs)
        return out[0] if isinstance(out, (list, tuple)) else out

    return Runnable(call, export_ms)


def _onnxruntime(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], threads: int) -> Runnable:
    import onnxruntime as ort

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed", once per export
    started = time.perf_counter()
    program = _step("torch.onnx.export", lambda: torch.onnx.export(module, inputs, dynamo=True, verbose=False, report=False))
    export_ms = (time.perf_counter() - started) * 1e3
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads  # the sweep's --threads, as torch gets
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    session = _step("ONNX Runtime session", lambda: ort.InferenceSession(
        program.model_proto.SerializeToString(), options, providers=["CPUExecutionProvider"]))
    names = [node.name for node in session.get_inputs()]

    def call(*xs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.detach().numpy() for name, x in zip(names, xs)})[0])

    return Runnable(call, export_ms)
