"""Sweeps: presets (TOML), CLI overrides, validation, and expansion into cases."""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

import attention_variants as av
from attention_variants.case import DTYPES, PASSES, RUNTIMES, Case

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"
DEVICES = ("cpu", "cuda", "mps")
Resolution = tuple[int, int]
MODELS_PRESET = "models"  # bench/presets/models.toml: the models command's, not a sweep


class SpecError(ValueError):
    """A bad sweep definition; its message is one line that names the bad value."""


@dataclass(frozen=True)
class Sweep:
    """The axes of a sweep (the cases are their cartesian product) and the timing budget."""

    variants: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("float32",)
    batch: tuple[int, ...] = (1,)
    resolutions: tuple[Resolution, ...] = ((28, 28),)
    heads: tuple[int, ...] = (2,)
    stages: tuple[tuple[int, int], ...] = ()  # (resolution, heads) pairs; replace the product of both
    head_dim: tuple[int, ...] = (32,)
    kernel_sizes: tuple[int, ...] = (7,)
    dilations: tuple[int, ...] = (1,)
    passes: tuple[str, ...] = ("forward",)
    runtimes: tuple[str, ...] = ("eager",)
    warmup_s: float = 0.05
    min_run_s: float = 0.1
    max_run_s: float = 1.0


AXES = tuple(f.name for f in fields(Sweep))
# The axis `runtimes` was a boolean `compiled` before: false is runtime eager, true is inductor.
LEGACY_COMPILED = "compiled"
TIMING_KEYS = ("warmup_s", "min_run_s", "max_run_s")


def preset_names() -> list[str]:
    """Return the names of the sweep's presets in bench/presets (models.toml belongs to the models command)."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.toml") if path.stem != MODELS_PRESET)


# The largest size of one axis: torch's kernels index many dimensions with 32-bit integers.
MAX_SIZE = 2**31 - 1
# The most elements one input tensor may have: torch counts them in a signed 64-bit integer.
MAX_ELEMENTS = 2**63 - 1
ASCII_INTEGER = re.compile(r"[+-]?[0-9]+")


def ascii_integer(text: str) -> int | None:
    """Return the integer written in ASCII digits (an optional sign), or None: int() also takes other scripts' digits."""
    text = text.strip()
    return int(text) if ASCII_INTEGER.fullmatch(text) else None


def parse_resolution(value: object) -> Resolution:
    """Return (height, width) from 56, "56" or "56x28"."""
    if isinstance(value, bool):
        raise SpecError(f"bad resolution {value!r}: expected N or HxW")
    if isinstance(value, int):
        return (value, value)
    text = str(value).lower().strip()
    parts = text.split("x")
    sides = [ascii_integer(p) for p in parts]
    if len(parts) not in (1, 2) or None in sides:
        raise SpecError(f"bad resolution {value!r}: expected N or HxW in ASCII digits, e.g. 56 or 56x28")
    return (sides[0], sides[-1])


def _as_int(axis: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SpecError(f"bad {axis} value {value!r}: expected an integer")
    number = value if isinstance(value, int) else ascii_integer(value)
    if number is None:
        raise SpecError(f"bad {axis} value {value!r}: expected an integer in ASCII digits")
    return number


def _as_bool(axis: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise SpecError(f"bad {axis} value {value!r}: expected true or false")


def _axis_values(axis: str, raw: object) -> tuple:
    if axis in TIMING_KEYS:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw < math.inf:
            raise SpecError(f"bad {axis} {raw!r}: expected a non-negative, finite number of seconds")
        return float(raw)
    items = raw if isinstance(raw, list) else [raw]
    if axis == "resolutions":
        return tuple(parse_resolution(item) for item in items)
    if axis == "stages":
        if not all(isinstance(s, list) and len(s) == 2 for s in items):
            raise SpecError(f"bad stages {raw!r}: expected [[resolution, heads], ...]")
        return tuple((_as_int("stages", r), _as_int("stages", h)) for r, h in items)
    if axis in ("batch", "heads", "head_dim", "kernel_sizes", "dilations"):
        return tuple(_as_int(axis, item) for item in items)
    if not all(isinstance(item, str) for item in items):
        raise SpecError(f"bad {axis} {raw!r}: expected a list of names")
    return tuple(item.strip() for item in items)


def load_preset(name: str) -> dict[str, object]:
    """Return the raw axes of preset `name` (a name in bench/presets or a path to a TOML file)."""
    if name == MODELS_PRESET:
        raise SpecError(f"preset {name!r} is the models command's: run_bench.py models --preset {name}")
    path = Path(name) if name.endswith(".toml") else PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        raise SpecError(f"unknown preset {name!r} (known: {', '.join(preset_names())})")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpecError(f"preset {path}: invalid TOML: {(str(err).splitlines() or [''])[0]}") from None
    except OSError as err:
        raise SpecError(f"preset {path}: cannot read it: {err.strerror}") from None
    unknown = sorted(set(data) - {*AXES, LEGACY_COMPILED})
    if unknown:
        raise SpecError(f"preset {path}: unknown key {unknown[0]!r} (known: {', '.join(AXES)})")
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
        raw.pop("stages", None)  # explicit axes replace the preset's paired stages
    raw.update(overrides)
    values = {axis: _axis_values(axis, value) for axis, value in raw.items()}
    sweep = replace(Sweep(), **values)
    if not sweep.variants:
        sweep = replace(sweep, variants=tuple(av.names()))
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
    """Raise SpecError naming the first bad value of the sweep."""
    known = {"variant": av.names(), "device": DEVICES, "dtype": tuple(DTYPES), "pass": PASSES, "runtime": RUNTIMES}
    for axis in ("devices", "dtypes", "passes", "runtimes"):
        if not getattr(sweep, axis):
            raise SpecError(f"empty axis {axis!r}")
    for kind, chosen in (("variant", sweep.variants), ("device", sweep.devices), ("dtype", sweep.dtypes), ("pass", sweep.passes),
                         ("runtime", sweep.runtimes)):
        for value in chosen:
            if value not in known[kind]:
                raise SpecError(f"unknown {kind} {value!r} (known: {', '.join(known[kind])})")
    sizes = {"batch": sweep.batch, "heads": sweep.heads, "head_dim": sweep.head_dim, "kernel_sizes": sweep.kernel_sizes,
             "dilations": sweep.dilations}
    sizes["resolutions"] = tuple(side for res in _shapes(sweep) for side in res[0])
    sizes["stages heads"] = tuple(heads for _, heads in _shapes(sweep))
    for axis, values in sizes.items():
        if not values:
            raise SpecError(f"empty axis {axis!r}")
        for value in values:
            if value <= 0:
                raise SpecError(f"non-positive {axis} value {value}")
            if value > MAX_SIZE:
                raise SpecError(f"{axis} value {value} is larger than torch can index in one axis ({MAX_SIZE})")
    for kernel in sweep.kernel_sizes:
        if kernel % 2 == 0:
            raise SpecError(f"even kernel size {kernel}: local attention needs an odd kernel (a centred square)")
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


def _shapes(sweep: Sweep) -> list[tuple[Resolution, int]]:
    if sweep.stages:
        return [((res, res), heads) for res, heads in sweep.stages]
    return [(res, heads) for res in sweep.resolutions for heads in sweep.heads]


def cases(sweep: Sweep) -> list[Case]:
    """Return every case of the sweep, largest work first (limits allocator fragmentation)."""
    product = itertools.product(
        sweep.variants, sweep.devices, sweep.dtypes, sweep.batch, _shapes(sweep),
        sweep.head_dim, sweep.kernel_sizes, sweep.dilations, sweep.passes, sweep.runtimes,
    )
    expanded = [
        Case(variant, device, dtype, batch, height, width, heads, head_dim, kernel, pass_name, runtime, dilation)
        for variant, device, dtype, batch, ((height, width), heads), head_dim, kernel, dilation, pass_name, runtime in product
    ]
    return sorted(expanded, key=lambda case: case.neighbour_elements, reverse=True)
