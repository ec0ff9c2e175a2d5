"""The variant registry: one typed dict plus `register`, `get`, `available`, `names`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from attention_variants.case import Case

FAMILIES = ("local-zero-pad", "local-masked", "local-deformed", "neighborhood", "window", "window-shifted")


@dataclass
class Prepared:
    """A variant ready to time: `fn(*inputs)` is the timed call, everything else is set-up.

    `inputs` are q, k, v in the variant's native layout, made from them with torch ops (the
    gradient check maps their gradients back to q, k, v through those ops; the timed closure
    uses detached copies); `to_canonical` maps the output back to (batch, heads, height, width,
    head_dim) for the oracle check, outside the timer.
    """

    fn: Callable[..., torch.Tensor]
    inputs: tuple[torch.Tensor, ...]
    to_canonical: Callable[[torch.Tensor], torch.Tensor]
    oracle_kwargs: dict[str, object] = field(default_factory=dict)  # e.g. the deformed kernel
    backend: str = ""  # the kernel/backend the library resolved to, recorded per row


Supports = Callable[[Case], "str | None"]
Build = Callable[[Case, torch.Tensor, torch.Tensor, torch.Tensor], Prepared]


def _always(case: Case) -> str | None:
    return None


@dataclass(frozen=True)
class Variant:
    """An attention implementation: its name, semantics family, and how to build it."""

    name: str
    family: str
    build: Build  # (case, q, k, v) in canonical layout on the case's device/dtype -> Prepared
    supports: Supports = _always  # None, or why it cannot run the case
    description: str = ""
    dilates: bool = False  # computes Case.dilation > 1 itself; otherwise register() makes supports refuse it


_REGISTRY: dict[str, Variant] = {}


class UnknownVariant(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register(variant: Variant) -> Variant:
    """Add a variant to the registry and return it; a duplicate name is an error."""
    if variant.name in _REGISTRY:
        raise ValueError(f"variant {variant.name!r} is already registered")
    if variant.family not in FAMILIES:
        raise ValueError(f"variant {variant.name!r}: unknown family {variant.family!r} (known: {', '.join(FAMILIES)})")
    if not variant.dilates:
        variant = replace(variant, supports=_undilated(variant.name, variant.supports))
    _REGISTRY[variant.name] = variant
    return variant


def _undilated(name: str, supports: Supports) -> Supports:
    """Return `supports` that also refuses dilated cases: a variant that ignores Case.dilation would compute dilation 1."""
    def refuse_dilation(case: Case) -> str | None:
        if case.dilation != 1:
            return f"{name} has no dilation (it computes dilation 1 only)"
        return supports(case)

    return refuse_dilation


def get(name: str) -> Variant:
    """Return the variant called `name`; the error lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownVariant(f"unknown variant {name!r} (known: {', '.join(names())})") from None


def names() -> list[str]:
    """Return every registered variant name, in registration order."""
    return list(_REGISTRY)


def available(case: Case | None = None) -> list[Variant]:
    """Return the registered variants (only those that can run `case`, when given)."""
    variants = list(_REGISTRY.values())
    if case is None:
        return variants
    return [v for v in variants if v.supports(case.replace(variant=v.name)) is None]
