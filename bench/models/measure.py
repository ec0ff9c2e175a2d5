"""One model case, measured: parameters, FLOPs, correctness against the float64 oracles, time and memory.

Runs in a worker (bench.execution.worker), like an attention case. Correctness: the model's
output for the first image against the same model (same weights) in float64 on the CPU with
every attention replaced by its family's oracle (bench.models.attention's oracle mode), and
the plain formulation (the same oracles in the case's dtype) setting the bound, as for ops
(bench.measure.correctness). timm's models are checked against the config they equal (`swin-t`
for timm-swin-t, ...) with timm's weights loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from bench.measure import memory
from bench.measure.correctness import MAX_FACTOR, MAX_FLOOR, MEAN_FACTOR, MEAN_FLOOR
from bench.measure.failures import classify
from bench.measure.record import Measured
from bench.measure.runtimes import RuntimeFailure, runnable, runtime_unavailable
from bench.measure.settings import Settings
from bench.measure.timing import measure, synchronize
from bench.models.attention import UnsupportedStage
from bench.models.configs import CONFIGS, TIMM
from bench.models.gradients import gradient_check, oracle_model


@dataclass(frozen=True)
class ModelCase:
    """One backbone at one shape: what a model row describes."""

    config: str
    device: str = "cpu"
    dtype: str = "float32"
    batch: int = 1
    resolution: int = 224
    pass_name: str = "forward"
    runtime: str = "eager"  # one of bench.axes.RUNTIMES: the whole model under it (bench.measure.runtimes)
    scope: str = "model"  # tells the worker this task is a model, not an attention case

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    @property
    def needs_grad(self) -> bool:
        return self.pass_name == "forward_backward"


TIMM_FUSED_ATTN = True  # pinned (timm's default, and TIMM_FUSED_ATTN=0 would change it): its SDPA path, as PVT's SRA here


def timm_backend(config: str) -> str:
    """Return the backend column of a model row: timm's version and its pinned attention path for timm's models."""
    if config not in TIMM:
        return ""
    import timm

    return f"timm {timm.__version__}, fused attention {'on' if TIMM_FUSED_ATTN else 'off'}"


def timm_unavailable() -> str | None:
    """Return why timm's models cannot be built here, or None."""
    try:
        import timm  # noqa: F401
    except Exception as err:  # ImportError, or torchvision failing to load beside this torch
        return (f"timm cannot be imported ({type(err).__name__}: {str(err).splitlines()[0][:120]}); "
                "pip install '.[models]' with a torch whose torchvision loads (docs/models.md)")
    return None


def build(config: str, resolution: int, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Return the model of config with seeded random weights, and the twin of the same semantics that checks it."""
    torch.manual_seed(seed)
    if config not in TIMM:
        model = CONFIGS[config].build(resolution)
        return model, model
    import timm

    timm_name, equal = TIMM[config]
    timm.layers.set_fused_attn(TIMM_FUSED_ATTN)
    sized = {"img_size": resolution} if timm_name.startswith("swin") else {}  # PVTv2 takes any size as it is
    model = timm.create_model(timm_name, pretrained=False, **sized)
    twin = CONFIGS[equal].build(resolution)
    twin.load_state_dict(model.state_dict())
    return model, twin


def measure_model(case: ModelCase, settings: Settings) -> Measured:
    """Return what measuring one model case observed; a failure or an unsupported stage is its status."""
    try:
        if reason := (case.config in TIMM and timm_unavailable()) or runtime_unavailable(case):
            return Measured("skipped", reason)
        return _measure(case, settings)
    except UnsupportedStage as err:
        return Measured("skipped", str(err))
    except RuntimeFailure as err:  # the runtime could not take the model: the reason names the step
        return Measured("error", str(err))
    except Exception as err:
        return Measured(*classify(err))


def _measure(case: ModelCase, settings: Settings) -> Measured:
    model, twin = build(case.config, case.resolution, settings.seed)
    model = model.to(case.device, case.torch_dtype).eval()
    generator = torch.Generator().manual_seed(settings.seed + 1)
    images = torch.randn(case.batch, 3, case.resolution, case.resolution, generator=generator).to(case.device, case.torch_dtype)
    with torch.no_grad():
        output = model(images)  # builds every stage's attention (an unsupported one raises here) before a runtime traces it
        run = runnable(model, (images,), case, settings.threads)  # eager: the model itself, whose output this is
        if run.fn is not model:
            output = run.fn(images)
    check = _check(output[:1], twin, images[:1], case)
    labels = torch.randint(0, 1000, (case.batch,), generator=torch.Generator().manual_seed(0)).to(case.device)
    if case.pass_name == "forward_backward":
        check = _merge(check, gradient_check(model, twin, images[:1], labels[:1], case.dtype, forward=run.fn))
    fn = _timed(run.fn, model, images, labels, case)
    gflop, flop_note = _gflop(_timed(model, model, images, labels, case))  # the model's own FLOPs, whatever runs it
    timing = measure(fn, case.device, settings.threads, settings.warmup_s, settings.min_run_s, settings.max_run_s,
                     settle=settings.allocator == "steady" and case.device == "cpu")
    peak_mb = memory.peak_memory_mb(fn, case.device)
    reasons = check.pop("reasons") + [flop_note] * bool(flop_note)
    if timing.noisy:
        reasons.append(f"noisy: IQR is {timing.iqr_ms / timing.median_ms:.0%} of the median")
    return Measured(
        "mismatch" if check.pop("mismatch") else "ok", "; ".join(reasons), timing.median_ms, timing.iqr_ms, timing.min_ms,
        timing.n_measurements, tuple(timing.block_times_ms), **timing.per_call, peak_mem_mb=peak_mb, gflop=gflop,
        params=sum(p.numel() for p in model.parameters()), backend="; ".join(filter(None, (timm_backend(case.config), run.backend))),
        export_ms=run.export_ms,
        **check,
    )


# PyTorch's counter knows the CUDA fused attention kernels but not the CPU one (PVT's SRA runs it): the same formulas.
CPU_SDPA_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *args, out_shape=None, **kwargs: flop_counter.sdpa_flop_count(q, k, v),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda grad, q, k, v, *args, out_shape=None, **kwargs: flop_counter.sdpa_backward_flop_count(grad, q, k, v),
}


def _gflop(fn) -> tuple[float | None, str]:
    """Return the GFLOP of one call as torch.utils.flop_counter counts them (a multiply-add is 2), or None and why not."""
    try:
        with FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOPS) as counter:
            fn()
    except Exception as err:  # e.g. an attention op the counter cannot trace (natten's flex backend)
        return None, f"FLOPs not counted: {type(err).__name__}: {str(err).splitlines()[0][:100]}"
    return counter.get_total_flops() / 1e9, ""


def _timed(forward, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, case: ModelCase):
    """Return the closure to time: forward(images) without gradients, or one training step's forward and backward
    of model's parameters through forward (the model itself, or the model compiled)."""
    if case.pass_name == "forward":
        def infer():
            with torch.no_grad():
                return forward(images)
        return infer
    params = [p for p in model.parameters() if p.requires_grad]

    def step():
        return torch.autograd.grad(F.cross_entropy(forward(images).float(), labels), params)
    return step


def _check(output: torch.Tensor, twin: torch.nn.Module, image: torch.Tensor, case: ModelCase) -> dict[str, object]:
    """Return max/mean |output - float64 oracle model| on one image and the bounds the plain formulation sets."""
    reference = _oracle_output(twin, image, torch.float64)
    plain = _oracle_output(twin, image, case.torch_dtype)
    synchronize(case.device)
    error = (output.detach().to("cpu", torch.float64) - reference).abs()
    plain_error = (plain - reference).abs()
    tolerance = MAX_FACTOR * plain_error.max().item() + MAX_FLOOR
    mean_tolerance = MEAN_FACTOR * plain_error.mean().item() + MEAN_FLOOR
    check = {"max_abs_err": error.max().item(), "mean_abs_err": error.mean().item(),
             "tolerance": tolerance, "mean_tolerance": mean_tolerance, "reasons": [], "mismatch": False}
    if not check["max_abs_err"] <= tolerance:
        check["reasons"].append(f"max_abs_err {check['max_abs_err']:.3g} > tolerance {tolerance:.3g} "
                                f"({MAX_FACTOR:g} x the plain {case.dtype} model's {plain_error.max().item():.3g} + floor)")
    if not check["mean_abs_err"] <= mean_tolerance:
        check["reasons"].append(f"mean_abs_err {check['mean_abs_err']:.3g} > mean_tolerance {mean_tolerance:.3g}")
    check["mismatch"] = bool(check["reasons"])
    return check


def _merge(check: dict[str, object], gradients: dict[str, object]) -> dict[str, object]:
    """Return the output check with the gradient check's columns, reasons and verdict added."""
    merged = {**check, **gradients}
    merged["reasons"] = check["reasons"] + gradients["reasons"]
    merged["mismatch"] = check["mismatch"] or gradients["mismatch"]
    return merged


def _oracle_output(twin: torch.nn.Module, image: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Return twin's output on image on the CPU in dtype with every attention computed by its family's oracle in dtype."""
    with torch.no_grad():
        return oracle_model(twin, dtype)(image.to("cpu", dtype)).to(torch.float64)


def case_columns(case: ModelCase) -> dict[str, object]:
    """Return the key columns of a model row (the attention-case key columns filled with stage 1's shape)."""
    config = CONFIGS[TIMM[case.config][1] if case.config in TIMM else case.config]
    first, _ = config.layout(0, 0, case.resolution // 4)
    heads = config.shape.heads[0]
    return {"variant": case.config, "family": "model", "device": case.device, "dtype": case.dtype, "batch": case.batch,
            "height": case.resolution, "width": case.resolution, "heads": heads, "head_dim": config.shape.dims[0] // heads,
            "kernel_size": first.kernel_size if first else config.shape.reductions[0],  # PVT's SRA: its reduction conv's
            "dilation": 1, "pass": case.pass_name, "runtime": case.runtime, "scope": "model"}
