"""The runtimes a variant runs under: eager, torch.compile, torch.export + AOTInductor, ONNX Runtime,
ExecuTorch with its XNNPACK delegate, OpenVINO.

Each turns the variant's `fn(*inputs)` into a callable with the same signature. The exported ones
trace the forward once for the case's static shapes (inference only) and record what the export
(and, for ExecuTorch, the lowering) cost (`export_ms`) apart from the timed calls, and what the
runtime made of the graph (`backend`: ExecuTorch's delegated and fallback ops, OpenVINO's device).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import re
import sys
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
LOG_LINE = re.compile(r"^\[(\w+)\.\w+:\d+\] (.*)")  # "[XNNCompiler.cpp:664] Failed to ...": ExecuTorch's log
CHECK_BANNER = re.compile(r"(\w+: )?Check '.*' failed at \S+:\d+:")  # OpenVINO's C++ assertion, before what it says


class RuntimeFailure(RuntimeError):
    """A runtime that could not take the variant; the message names the step and the exporter's first line."""


@dataclass(frozen=True)
class Runnable:
    """A callable under a runtime, and what the export cost to make it (the exported runtimes only)."""

    fn: Callable[..., object]
    export_ms: float | None = None  # torch.export, the ONNX export, ExecuTorch's lowering (not compile, not the first call)
    backend: str | None = None  # what the runtime made of the graph, where it says (ExecuTorch, OpenVINO)


# The runtimes that export the forward once for static shapes and run it outside PyTorch's autograd.
INFERENCE_ONLY = ("export", "onnxruntime", "executorch", "openvino")
# What each CPU-only runtime needs installed, the extra that installs it, and what runs the graph.
PACKAGES = {"onnxruntime": (("onnxruntime", "onnxscript"), "onnx", "its CPU execution provider"),
            "executorch": (("executorch",), "edge", "XNNPACK and its portable CPU kernels"),
            "openvino": (("openvino",), "edge", "its CPU device")}


def runtime_unavailable(case: Case) -> str | None:
    """Return why the harness cannot run the case under its runtime (None when it can)."""
    if case.runtime in INFERENCE_ONLY and case.needs_grad:
        return f"{case.runtime} runs inference only: forward, no backward"
    if case.runtime == "export" and not _has_aoti_packages():
        return "the export runtime needs torch >= 2.6 (torch._inductor.aoti_compile_and_package)"
    if case.runtime in PACKAGES:
        names, extra, engine = PACKAGES[case.runtime]
        if case.device != "cpu":
            return f"{case.runtime} is measured with {engine} only"
        missing = [name for name in names if importlib.util.find_spec(name) is None]
        if missing:
            return f"{' and '.join(missing)} not installed (pip install 'local-attention-bench[{extra}]')"
        if case.dtype == "bfloat16" and case.runtime in ("onnxruntime", "openvino"):
            return f"{case.runtime}'s Python API takes numpy arrays, and numpy has no bfloat16"
        if case.dtype == "float64" and case.runtime == "openvino":
            return "OpenVINO's CPU device computes in float32 at most"
    return None


def _has_aoti_packages() -> bool:
    try:
        from torch._inductor import aoti_compile_and_package, aoti_load_package  # noqa: F401
    except ImportError:
        return False
    return True


def runnable(fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...], case: Case, threads: int) -> Runnable:
    """Return fn under the case's runtime; the exported runtimes export it here (RuntimeFailure when they cannot)."""
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
    if case.runtime == "executorch":
        return _executorch(module, inputs, threads)
    if case.runtime == "openvino":
        return _openvino(module, inputs, threads, case.dtype)
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
    line = _openvino_reason(str(err)) or first_line(err)
    line = ADDRESS.sub("", ANSI.sub("", line)).strip()
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def _openvino_reason(text: str) -> str | None:
    """Return what an OpenVINO error says, which comes after its banners ("Check 'false' failed at frontend.cpp:53:",
    "Converting input model") and before its Python stack ("At:"); None for any other error."""
    if not CHECK_BANNER.match(text):
        return None
    said = [line.strip() for line in text.split("\nAt:\n")[0].splitlines()]
    said = [line for line in said if line and not CHECK_BANNER.match(line) and line != "Converting input model"]
    return " ".join(said[-2:]) if len(said) > 1 and said[-2].endswith(":") else (said or [None])[-1]


def _aoti(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> Runnable:
    from torch._inductor import aoti_compile_and_package, aoti_load_package

    program, export_ms = _export(module, inputs)
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
    program, export_ms = _timed_step("torch.onnx.export",
                                     lambda: torch.onnx.export(module, inputs, dynamo=True, verbose=False, report=False))
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


def _timed_step(name: str, call: Callable[[], object]) -> tuple[object, float]:
    """Return what the step returned (RuntimeFailure naming it when it failed) and what it took (ms)."""
    started = time.perf_counter()
    result = _step(name, call)
    return result, (time.perf_counter() - started) * 1e3


def _export(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.export.ExportedProgram, float]:
    """Return torch.export's program of the module for these inputs, and what exporting took (ms)."""
    return _timed_step("torch.export", lambda: torch.export.export(module, inputs))


def _executorch(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], threads: int) -> Runnable:
    """torch.export, lowered with the XNNPACK partitioner (what it cannot take runs on ExecuTorch's portable kernels),
    run by ExecuTorch's runtime from its Python bindings with an XNNPACK thread pool of --threads."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    program, export_ms = _export(module, inputs)
    edge, lower_ms = _timed_step("XNNPACK lowering",
                                 lambda: to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]))
    delegated = _delegation(get_delegation_info(edge.exported_program().graph_module))
    buffer, serialise_ms = _timed_step("ExecuTorch program", lambda: edge.to_executorch().buffer)
    export_ms += lower_ms + serialise_ms
    logged: list[str] = []
    try:
        with _native_stderr(logged):  # ExecuTorch logs why a load fails there, not in the exception
            portable_lib._unsafe_reset_threadpool(threads)
            loaded = _step("ExecuTorch load", lambda: Runtime.get().load_program(buffer))  # the method needs it alive
            method = _step("ExecuTorch load", lambda: loaded.load_method("forward"))
    except RuntimeFailure as err:
        said = [_logged_reason(line) for line in logged]
        said = [line for line in said if line]
        raise RuntimeFailure(f"ExecuTorch load failed: {said[0]}" if said else str(err)) from err

    def call(*xs: torch.Tensor, program=loaded) -> torch.Tensor:
        # A copy: the output lives in the program's planned memory, which the next call overwrites.
        return method.execute(list(xs))[0].clone()

    return Runnable(call, export_ms, f"executorch, {threads} threads: {delegated}")


@contextlib.contextmanager
def _native_stderr(lines: list[str]):
    """Collect what is written on standard error meanwhile: on file descriptor 2 by native code, and on sys.stderr
    (ExecuTorch's bindings log through it when it is not the descriptor, e.g. under pytest's capture)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stderr(io.StringIO()) as python_side:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines() + python_side.getvalue().splitlines())


def _logged_reason(line: str) -> str | None:
    """Return an ExecuTorch log line that says why a load failed, as "source: what it says" (None for the others:
    e.g. cpuinfo's lines about ARM files that an x86 machine has not)."""
    logged = LOG_LINE.match(line)
    if not logged or logged[1] in ("cpuinfo_utils", "threadpool"):
        return None
    return f"{logged[1]}: {logged[2]}" if re.search("fail|missing", logged[2], re.IGNORECASE) else None


def _delegation(info) -> str:
    """Return how many of the graph's ops XNNPACK took, and the ops it left to the portable kernels, in one line."""
    counts = info.delegation_by_operator.values()
    fallback = sorted(c.op_type for c in counts if c.non_delegated and c.op_type not in ("getitem", "output"))
    delegated = sum(c.delegated for c in counts)
    total = delegated + sum(c.non_delegated for c in counts if c.op_type not in ("getitem", "output"))
    left = f"; portable: {', '.join(fallback)}" if fallback else ""
    return f"XNNPACK took {delegated} of {total} ops in {info.num_delegated_subgraphs} subgraphs{left}"


def _openvino(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], threads: int, dtype: str) -> Runnable:
    """torch.export, converted by OpenVINO, compiled for its CPU device with --threads inference threads, the latency
    hint and the case's precision (OpenVINO would otherwise run float32 in bfloat16 on CPUs that have it)."""
    import openvino as ov

    program, export_ms = _export(module, inputs)
    model, convert_ms = _timed_step("OpenVINO convert_model", lambda: ov.convert_model(program))
    export_ms += convert_ms
    precision = {"float32": "f32", "float16": "f16"}[dtype]
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    compiled = _step("OpenVINO compile_model", lambda: ov.Core().compile_model(model, "CPU", config))
    request = compiled.create_infer_request()
    backend = (f"openvino {ov.__version__.split('-')[0]}: CPU, {compiled.get_property('INFERENCE_NUM_THREADS')} threads, "
               f"{config['PERFORMANCE_HINT'].lower()} hint, {compiled.get_property('INFERENCE_PRECISION_HINT').to_string()}")

    def call(*xs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(request.infer([x.detach().numpy() for x in xs])[0].copy())

    return Runnable(call, export_ms, backend)
