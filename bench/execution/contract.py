"""What a base revision's variants must provide for the A/B gate to measure them: the contract, by version.

The gate's base worker runs this harness's measuring code on the base revision's
attention_variants (bench/execution/ab.py). The harness needs from it: `attention_variants.get(name)`
(a variant with `family`, `supports(case)` and `build(case, q, k, v)` -> a Prepared with `fn`,
`inputs` and `to_canonical`) and a frozen dataclass `attention_variants.case.Case`, whose fields
changed over time. Each version below names the fields its Case has; a field of today's Case
that an older Case lacks is answered from LACKING: the value it must have (or how the older
field spells it), and how to read it back; what the harness derives from the fields (traced,
needs_grad, ...) from DERIVED. Tables, not one adapter per old class.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import sys
from dataclasses import dataclass
from typing import Callable

# The version this revision's attention_variants provides (attention_variants.CONTRACT).
CURRENT = 4
# version -> the fields that distinguish its Case (a Case is of the newest version whose fields it has)
VERSIONS = {4: {"extra", "runtime", "dilation"}, 3: {"runtime", "dilation"}, 2: {"compiled", "dilation"}, 1: {"compiled"}}


@dataclass(frozen=True)
class Lacking:
    """How a field of today's Case maps onto an older Case that lacks it."""

    since: int  # the contract version that added the field
    to_old: Callable[[object], dict[str, object]]  # today's value -> the older Case's fields (ValueError: not expressible)
    from_old: Callable[[object], object]  # an older case -> today's value


def _only(field: str, allowed: object, version: int) -> Callable[[object], dict[str, object]]:
    def to_old(value: object) -> dict[str, object]:
        if value != allowed and not (allowed == () and not value):
            raise ValueError(f"this attention_variants predates {field} (contract {version}): it cannot run {field} {value!r}")
        return {}
    return to_old


def _compiled(runtime: object) -> dict[str, object]:
    if runtime not in ("eager", "inductor"):
        raise ValueError(f"this attention_variants predates the runtime axis: it cannot run runtime {runtime}")
    return {"compiled": runtime == "inductor"}


# What the harness reads of a case beyond its fields, as today's Case derives it (a test keeps them equal). Spelled
# here, not taken from today's Case: in the base worker `attention_variants` is the base revision's package.
DERIVED: dict[str, Callable[[object], object]] = {
    "torch_dtype": lambda case: getattr(importlib.import_module("torch"), case.dtype),
    "traced": lambda case: case.runtime != "eager",
    "needs_grad": lambda case: case.pass_name == "forward_backward",
    "radius": lambda case: case.kernel_size // 2,
    "input_elements": lambda case: case.batch * case.heads * case.height * case.width * case.head_dim,
    "neighbour_elements": lambda case: case.batch * case.heads * case.height * case.width * case.head_dim * case.kernel_size**2,
}

LACKING = {
    "dilation": Lacking(2, _only("dilation", 1, 2), lambda case: 1),
    "runtime": Lacking(3, _compiled, lambda case: "inductor" if case.compiled else "eager"),
    "extra": Lacking(4, _only("axes added by plugins", (), 4), lambda case: ()),
}


def version_of(case_class: type) -> int:
    """Return the contract version of a Case class: the newest whose fields it has."""
    known = set(case_class.__dataclass_fields__)
    return max((version for version, needed in VERSIONS.items() if needed <= known), default=1)


def as_case(case_class: type, fields: dict[str, object]) -> object:
    """Return today's case fields as a case_class (today's Case, or a base revision's older one); ValueError when the
    older Case cannot express the case (e.g. runtime export before the runtime axis)."""
    declared = getattr(sys.modules.get("attention_variants"), "CONTRACT", None)
    if declared is not None and declared > CURRENT:
        raise ValueError(f"these variants follow contract {declared}, newer than this harness's {CURRENT}: gate with a newer harness")
    known = set(case_class.__dataclass_fields__)
    if set(LACKING) <= known:
        return case_class(**fields)
    older = {name: value for name, value in fields.items() if name in known}
    for name in set(LACKING) - known:
        older.update(LACKING[name].to_old(fields.get(name)))
    return _answering(case_class)(**older)


@functools.cache
def _answering(case_class: type) -> type:
    """Return a subclass of an older case_class that answers what the harness reads: today's fields it lacks (LACKING),
    what the harness derives from the fields (DERIVED), and replace() in today's field names."""
    missing = set(LACKING) - set(case_class.__dataclass_fields__)
    answers = {name: property(LACKING[name].from_old) for name in missing}
    answers.update({name: property(derive) for name, derive in DERIVED.items() if not hasattr(case_class, name)})

    def replace(self: object, **changes: object) -> object:
        return as_case(case_class, {**dataclasses.asdict(self), **{name: getattr(self, name) for name in missing}, **changes})

    return type(f"Contract{version_of(case_class)}Case", (case_class,), {**answers, "replace": replace})
