"""Sweeps: presets (TOML), CLI overrides, validation, and expansion into cases."""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import attention_variants as av
from attention_variants.case import Case
from bench.axes import AXES, SpecError, case_fields, size

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"
MODEL_PRESETS = {"models": "models", "paper-figure": "paper"}  # bench/presets/<name>.toml -> the command it belongs to
# The most elements one input tensor may have: torch counts them in a signed 64-bit integer.
MAX_ELEMENTS = 2**63 - 1
TIMING_KEYS = ("warmup_s", "min_run_s", "max_run_s")
STAGES = "stages"  # [[resolution, heads], ...]: paired values that replace the product of both axes
# The axis `runtimes` was a boolean `compiled` before: false is runtime eager, true is inductor.
LEGACY_COMPILED = "compiled"


@dataclass(frozen=True)
class Sweep:
    """The values of every axis of bench/axes.py (the cases are their product, or stages) and the timing budget."""

    axes: dict[str, tuple] = field(default_factory=lambda: {name: axis.default for name, axis in AXES.items()})
    stages: tuple[tuple[int, int], ...] = ()  # (resolution, heads) pairs; replace the product of both
    warmup_s: float = 0.05
    min_run_s: float = 0.1
    max_run_s: float = 1.0

    def __getattr__(self, name: str) -> tuple:  # sweep.kernel_sizes: the values of an axis
        axes = self.__dict__.get("axes", {})
        if name in axes:
            return axes[name]
        raise AttributeError(f"no axis {name!r} (known: {', '.join(AXES)})")


def preset_keys() -> tuple[str, ...]:
    """Return the keys a preset may set: every axis (a plugin's too), stages and the timing budget."""
    return (*AXES, STAGES, *TIMING_KEYS)


def preset_names() -> list[str]:
    """Return the names of the sweep's presets in bench/presets (not those of the models and paper commands)."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.toml") if path.stem not in MODEL_PRESETS)


def _as_bool(axis: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise SpecError(f"bad {axis} value {value!r}: expected true or false")


def _seconds(key: str, raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw < math.inf:
        raise SpecError(f"bad {key} {raw!r}: expected a non-negative, finite number of seconds")
    return float(raw)


def _stages(raw: object) -> tuple[tuple[int, int], ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(s, list) and len(s) == 2 for s in items):
        raise SpecError(f"bad stages {raw!r}: expected [[resolution, heads], ...]")
    return tuple((size("resolutions", r), size("stages heads", h)) for r, h in items)


def load_preset(name: str) -> dict[str, object]:
    """Return the raw axes of preset `name` (a name in bench/presets or a path to a TOML file)."""
    if name in MODEL_PRESETS:
        raise SpecError(f"preset {name!r} is the {MODEL_PRESETS[name]} command's: run_bench.py {MODEL_PRESETS[name]}")
    path = Path(name) if name.endswith(".toml") else PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        raise SpecError(f"unknown preset {name!r} (known: {', '.join(preset_names())})")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpecError(f"preset {path}: invalid TOML: {(str(err).splitlines() or [''])[0]}") from None
    except OSError as err:
        raise SpecError(f"preset {path}: cannot read it: {err.strerror}") from None
    unknown = sorted(set(data) - {*preset_keys(), LEGACY_COMPILED})
    if unknown:
        raise SpecError(f"preset {path}: unknown key {unknown[0]!r} (known: {', '.join(preset_keys())})")
    return data


def parse_cli_list(axis: str, text: str) -> list[str]:
    """Return the comma-separated values of a CLI flag, rejecting empty items."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise SpecError(f"bad --{axis.replace('_', '-')} value {text!r}: expected a comma-separated list")
    return items


def make_sweep(preset: str = "quick", overrides: dict[str, object] | None = None) -> Sweep:
    """Return the validated sweep: the preset's axes with `overrides` (raw values) on top."""
    raw = _runtimes_for_compiled(load_preset(preset))
    overrides = _runtimes_for_compiled({k: v for k, v in (overrides or {}).items() if v is not None})
    if "resolutions" in overrides or "heads" in overrides:
        raw.pop(STAGES, None)  # explicit axes replace the preset's paired stages
    raw.update(overrides)
    timing = {key: _seconds(key, raw.pop(key)) for key in TIMING_KEYS if key in raw}
    stages = _stages(raw.pop(STAGES)) if STAGES in raw else ()
    axes = {name: axis.values(raw[name]) if name in raw else axis.default for name, axis in AXES.items()}
    if not axes["variants"]:
        axes["variants"] = tuple(av.names())
    sweep = Sweep(axes, stages, **timing)
    validate(sweep)
    return sweep


def _runtimes_for_compiled(raw: dict[str, object]) -> dict[str, object]:
    """Return raw axes with an old `compiled` (true/false list) given as the runtimes it means."""
    if LEGACY_COMPILED not in raw:
        return raw
    raw = dict(raw)
    items = raw.pop(LEGACY_COMPILED)
    runtimes = ["inductor" if _as_bool(LEGACY_COMPILED, item) else "eager" for item in (items if isinstance(items, list) else [items])]
    raw.setdefault("runtimes", runtimes)
    return raw


def validate(sweep: Sweep) -> None:
    """Raise SpecError naming the first rule the sweep breaks that no single value breaks (each value was parsed by its axis)."""
    for name, values in sweep.axes.items():
        if not values and not (name == "resolutions" and sweep.stages):
            raise SpecError(f"empty axis {name!r}")
    _check_extents(sweep)
    _check_elements(sweep)
    if sweep.min_run_s > sweep.max_run_s:
        raise SpecError(f"min_run_s {sweep.min_run_s} exceeds max_run_s {sweep.max_run_s}")


def _check_extents(sweep: Sweep) -> None:
    """Raise SpecError for a (dilated) kernel larger than an image: its square spans (k - 1) * d + 1 pixels."""
    for kernel, dilation, ((height, width), _) in itertools.product(sweep.kernel_sizes, sweep.dilations, _shapes(sweep)):
        extent = (kernel - 1) * dilation + 1
        if extent <= min(height, width):
            continue
        if dilation == 1:
            raise SpecError(f"kernel size {kernel} is larger than the image {height}x{width}")
        raise SpecError(f"kernel size {kernel} at dilation {dilation} spans {extent} pixels, more than the image {height}x{width}")


def _check_elements(sweep: Sweep) -> None:
    """Raise SpecError for a case whose q (batch x heads x H x W x head_dim) has more elements than a tensor can hold."""
    for ((height, width), heads), batch, head_dim in itertools.product(_shapes(sweep), sweep.batch, sweep.head_dim):
        elements = batch * heads * height * width * head_dim
        if elements > MAX_ELEMENTS:
            raise SpecError(f"a {batch}x{heads}x{height}x{width}x{head_dim} input has {elements:.3g} elements, "
                            f"more than a torch tensor can hold ({MAX_ELEMENTS:.3g})")


def _shapes(sweep: Sweep) -> list[tuple[tuple[int, int], int]]:
    if sweep.stages:
        return [((res, res), heads) for res, heads in sweep.stages]
    return [(res, heads) for res in sweep.resolutions for heads in sweep.heads]


def cases(sweep: Sweep) -> list[Case]:
    """Return every case of the sweep (the product of its axes, resolution and heads paired by stages), largest work first
    (limits allocator fragmentation)."""
    axes = {**sweep.axes, "resolutions": _shapes(sweep)}  # (resolution, heads) pairs
    del axes["heads"]
    expanded = []
    for values in itertools.product(*axes.values()):
        chosen = dict(zip(axes, values))
        chosen["resolutions"], chosen["heads"] = chosen["resolutions"]
        expanded.append(Case.of(**case_fields(chosen)))
    return sorted(expanded, key=lambda case: case.neighbour_elements, reverse=True)
