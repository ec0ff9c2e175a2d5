"""The axes of a sweep, each declared once: flag, preset key, parser, default, CSV column(s), part of the case key or not.

Everything else that spells an axis is derived from AXES: the sweep's flags (bench/cli/sweep.py),
the preset keys, their validation and the expansion into cases (bench/execution/spec.py), the
schema's columns (bench/results/schema.py) and the case key (bench/results/selection.py). A
plugin adds an axis with `register(Axis(...))`; its variants read the value as `case.<field>`
and its rows carry the column. Imports no torch: reading results needs the columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

# How the variant's code runs: as written (eager), torch.compile (inductor), torch.export plus an
# AOTInductor package (export), exported to ONNX and run by ONNX Runtime (onnxruntime), lowered to
# ExecuTorch with its XNNPACK delegate (executorch), or converted and compiled by OpenVINO (openvino).
RUNTIMES = ("eager", "inductor", "export", "onnxruntime", "executorch", "openvino")
PASSES = ("forward", "forward_backward")
DEVICES = ("cpu", "cuda", "mps")
# The largest size of one axis: torch's kernels index many dimensions with 32-bit integers.
MAX_SIZE = 2**31 - 1
ASCII_INTEGER = re.compile(r"[+-]?[0-9]+")


class SpecError(ValueError):
    """A bad sweep definition; its message is one line that names the bad value."""


def ascii_integer(text: str) -> int | None:
    """Return the integer written in ASCII digits (an optional sign), or None: int() also takes other scripts' digits."""
    text = text.strip()
    return int(text) if ASCII_INTEGER.fullmatch(text) else None


def integer_of(axis: str, value: object) -> int:
    """Return a TOML integer or a flag's ASCII digits as an int; SpecError naming the axis otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SpecError(f"bad {axis} value {value!r}: expected an integer")
    number = value if isinstance(value, int) else ascii_integer(value)
    if number is None:
        raise SpecError(f"bad {axis} value {value!r}: expected an integer in ASCII digits")
    return number


def size(axis: str, value: object) -> int:
    """Return a positive integer that torch can index in one dimension; SpecError naming the axis otherwise."""
    number = integer_of(axis, value)
    if number <= 0:
        raise SpecError(f"non-positive {axis} value {number}")
    if number > MAX_SIZE:
        raise SpecError(f"{axis} value {number} is larger than torch can index in one axis ({MAX_SIZE})")
    return number


def parse_resolution(value: object) -> tuple[int, int]:
    """Return (height, width) from 56, "56" or "56x28"."""
    if isinstance(value, bool):
        raise SpecError(f"bad resolution {value!r}: expected N or HxW")
    if isinstance(value, int):
        return (size("resolutions", value),) * 2
    parts = str(value).lower().strip().split("x")
    sides = [ascii_integer(part) for part in parts]
    if len(parts) not in (1, 2) or None in sides:
        raise SpecError(f"bad resolution {value!r}: expected N or HxW in ASCII digits, e.g. 56 or 56x28")
    return (size("resolutions", sides[0]), size("resolutions", sides[-1]))


def _odd_kernel(value: object) -> int:
    kernel = size("kernel_sizes", value)
    if kernel % 2 == 0:
        raise SpecError(f"even kernel size {kernel}: local attention needs an odd kernel (a centred square)")
    return kernel


def one_of(kind: str, known: Callable[[], tuple[str, ...]]) -> Callable[[object], str]:
    """Return a parser of a name that must be one of known() (called late: the variants include plugins')."""
    def parse(value: object) -> str:
        if not isinstance(value, str):
            raise SpecError(f"bad {kind} {value!r}: expected a name")
        if value.strip() not in known():
            raise SpecError(f"unknown {kind} {value.strip()!r} (known: {', '.join(known())})")
        return value.strip()
    return parse


def _variant_names() -> tuple[str, ...]:
    import attention_variants

    return tuple(attention_variants.names())


def _dtype_names() -> tuple[str, ...]:
    from attention_variants.case import DTYPES

    return tuple(DTYPES)


@dataclass(frozen=True)
class Axis:
    """One axis: the preset key `name` (its flag is --name with dashes), what a value sets and how it is written."""

    name: str  # the preset key and the Sweep's axis, e.g. "kernel_sizes"
    fields: tuple[str, ...]  # the Case attribute(s) one value sets, e.g. ("kernel_size",); ("height", "width") for a resolution
    dtype: str  # the pandas dtype of its column(s)
    parse: Callable[[object], object]  # one TOML item or flag item -> the value; SpecError naming the bad value
    default: tuple[object, ...]  # the values of a sweep whose preset and flags leave the axis out
    columns: tuple[str, ...] = ()  # the CSV column of each field (default: the field's name)
    in_key: bool = True  # two rows with equal key columns measured the same case
    fill: object = None  # an empty cell of a file written before the column existed means this (None: every file has it)
    help: str = ""

    def __post_init__(self) -> None:
        if not self.columns:
            object.__setattr__(self, "columns", self.fields)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def values(self, raw: object) -> tuple[object, ...]:
        """Return the parsed values of a preset's list (or one item) or of a flag's comma-separated items."""
        return tuple(self.parse(item) for item in (raw if isinstance(raw, (list, tuple)) else [raw]))

    def cells(self, value: object) -> dict[str, object]:
        """Return one value as {field: part}: a resolution sets two fields, other axes one."""
        return dict(zip(self.fields, value if len(self.fields) > 1 else (value,)))


def _sizes(name: str, field: str, default: int, dtype: str = "int64", **more: object) -> Axis:
    return Axis(name, (field,), dtype, lambda value: size(name, value), (default,), **more)


AXES: dict[str, Axis] = {axis.name: axis for axis in (
    Axis("variants", ("variant",), "string", one_of("variant", _variant_names), (), help="registered variants (default: all)"),
    Axis("devices", ("device",), "string", one_of("device", lambda: DEVICES), ("cpu",)),
    Axis("dtypes", ("dtype",), "string", one_of("dtype", _dtype_names), ("float32",)),
    _sizes("batch", "batch", 1),
    Axis("resolutions", ("height", "width"), "int64", parse_resolution, ((28, 28),), help="N or HxW"),
    _sizes("heads", "heads", 2),
    _sizes("head_dim", "head_dim", 32),
    Axis("kernel_sizes", ("kernel_size",), "int64", _odd_kernel, (7,)),
    _sizes("dilations", "dilation", 1, dtype="Int64", fill=1, help="neighbours d pixels apart (DiNAT)"),
    Axis("passes", ("pass_name",), "string", one_of("pass", lambda: PASSES), ("forward",), columns=("pass",)),
    Axis("runtimes", ("runtime",), "string", one_of("runtime", lambda: RUNTIMES), ("eager",), fill="eager",
         help=", ".join(RUNTIMES)),
)}


def register(axis: Axis) -> Axis:
    """Add an axis (a plugin's): it gets a flag, a preset key, a column at the end of the schema and, if in_key, a place
    in the case key. Its variants read `case.<field>`. Registering the same axis again is a no-op."""
    known = AXES.get(axis.name)
    if known is not None and known != axis:
        raise ValueError(f"axis {axis.name!r} is already registered differently")
    from attention_variants.case import Case  # a field must not hide what a case already answers (traced, replace, ...)

    taken = {column for other in AXES.values() if other.name != axis.name for column in other.columns}
    if taken & set(axis.columns) or len(axis.fields) != len(axis.columns) or any(hasattr(Case, f) for f in axis.fields):
        raise ValueError(f"axis {axis.name!r}: its fields and columns must be new, one column per field")
    if not axis.default and axis.fill is None:
        raise ValueError(f"axis {axis.name!r}: give it a default (what older files were measured at)")
    AXES[axis.name] = axis
    return axis


def key_columns() -> tuple[str, ...]:
    """Return the columns that name a case: two rows with the same values measured the same thing."""
    return tuple(column for axis in AXES.values() if axis.in_key for column in axis.columns)


def axis_columns() -> dict[str, str]:
    """Return every axis column and its pandas dtype, in the order of AXES."""
    return {column: axis.dtype for axis in AXES.values() for column in axis.columns}


def fills() -> dict[str, object]:
    """Return what an empty cell of an axis column means (files written before the column existed): the axis's fill,
    or for a plugin's axis its first default."""
    filled: dict[str, object] = {}
    for axis in AXES.values():
        if axis.fill is not None or axis.name not in BUILT_IN:
            value = axis.fill if axis.fill is not None else axis.default[0]
            filled.update(zip(axis.columns, axis.cells(value).values()))
    return filled


def case_fields(values: dict[str, object]) -> dict[str, object]:
    """Return the Case fields of one value per axis ({axis name: value}): Case(**case_fields(...)) builds the case."""
    return {field: cell for name, value in values.items() for field, cell in AXES[name].cells(value).items()}


def case_columns(case: object) -> dict[str, object]:
    """Return a case's axis columns, e.g. {"variant": "im2col", ..., "pass": "forward", ...} (every axis, in order)."""
    return {column: getattr(case, field) for axis in AXES.values() for field, column in zip(axis.fields, axis.columns)}


BUILT_IN = frozenset(AXES)  # the axes of this file; the others are a plugin's and their columns end the schema
