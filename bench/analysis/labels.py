"""How cases and variants are named for readers: axis labels, resolutions, and the display order of variants."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

# The built-in variants in display order (legends, tables): the reference first, then its
# relatives, then the fast exact ones. Others follow by name. bench/plots/style.py gives each a look.
VARIANT_ORDER = (
    "im2col", "slide", "slide-deformed", "window", "window-shifted", "natten", "local-fused", "local-halo",
    "slide-grouped", "slide-channels-last", "flex-neighborhood", "flex-local-masked", "local-views", "local-tiled",
)
AXIS_WORDS = {"heads": "heads", "head_dim": "head dim", "kernel_size": "kernel", "dilation": "dilation", "runtime": "runtime"}
# Axes whose usual value goes unsaid in titles and labels: only a dilated case says "dilation d".
QUIET_VALUES = {"dilation": 1}


def variant_order(names: Iterable[str]) -> list[str]:
    """Return the variants in a stable order: the built-in ones first (in VARIANT_ORDER), then by name."""
    present = set(names)
    return [name for name in VARIANT_ORDER if name in present] + sorted(present - set(VARIANT_ORDER))


def resolution_label(height: int, width: int) -> str:
    """Return '56×56' for a resolution."""
    return f"{height}×{width}"


def axis_text(column: str, value: object) -> str:
    """Return a reader's label for one case axis value, e.g. 'kernel 7' or 'inductor' (a runtime names itself)."""
    if column == "runtime":
        return str(value)
    return f"{AXIS_WORDS.get(column, column)} {value}"


def worth_naming(column: str, value: object) -> bool:
    """Return whether a title names this axis value (False for an axis at its QUIET_VALUES value)."""
    return column not in QUIET_VALUES or value != QUIET_VALUES[column]


def case_text(row: pd.Series) -> str:
    """Return a compact description of a row's case for footnotes, e.g. '28×28 b2 float32 forward' (+ ' dilation 2')."""
    text = f"{resolution_label(row['height'], row['width'])} b{row['batch']} {row['dtype']} {row['pass']}"
    dilation = row.get("dilation", 1)
    return text + (f" {axis_text('dilation', dilation)}" if worth_naming("dilation", dilation) else "")
