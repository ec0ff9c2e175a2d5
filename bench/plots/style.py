"""Fixed look of the figures: one colour and marker per variant, line styles, a colour per machine and per runtime."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterable

from matplotlib import colormaps
from matplotlib import colors as mcolors


@dataclass(frozen=True)
class Style:
    """How one variant is drawn in every figure."""

    color: str
    marker: str


# The built-in variants keep these styles whatever else a run holds; im2col, the reference, is dark.
FIXED = {
    "im2col": Style("#3b3b3b", "o"),
    "slide": Style("#1f77b4", "s"),
    "slide-deformed": Style("#17becf", "^"),
    "window": Style("#2ca02c", "D"),
    "window-shifted": Style("#98c13d", "v"),
    "natten": Style("#d62728", "P"),
    "local-fused": Style("#ff7f0e", "X"),
    "local-halo": Style("#8c564b", "*"),
    "slide-grouped": Style("#e377c2", "h"),
    "slide-channels-last": Style("#bcbd22", "p"),
    "flex-neighborhood": Style("#9467bd", "<"),
    "flex-local-masked": Style("#005f73", ">"),
    "local-views": Style("#6a3d9a", "d"),
    "local-tiled": Style("#b15928", "8"),
}
_EXTRA_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f", "#6a3d9a", "#b15928", "#005f73")
_EXTRA_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")


def _every_pair() -> tuple[Style, ...]:
    colors, markers = len(_EXTRA_COLORS), len(_EXTRA_MARKERS)
    # Slot i: colour i mod n; the marker moves on by one each round, so each pair occurs exactly once
    # and neighbouring slots differ in both colour and marker.
    return tuple(Style(_EXTRA_COLORS[i % colors], _EXTRA_MARKERS[(i % colors + i // colors) % markers])
                 for i in range(colors * markers))


EXTRA = _every_pair()
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))


def variant_styles(names: Iterable[str]) -> dict[str, Style]:
    """Return a style per variant name: fixed for known ones, a name hash for the others.

    Hashing the name (not its position) keeps a plugin variant's look the same from one
    run to the next; a collision within one figure set moves to the next free slot.
    """
    styles: dict[str, Style] = {}
    taken: set[int] = set()
    for name in sorted(set(names)):
        if name in FIXED:
            styles[name] = FIXED[name]
            continue
        slot = zlib.crc32(name.encode()) % len(EXTRA)
        while slot in taken and len(taken) < len(EXTRA):
            slot = (slot + 1) % len(EXTRA)
        taken.add(slot)
        styles[name] = EXTRA[slot]
    return styles


def linestyles(values: Iterable[object]) -> dict[object, object]:
    """Return a line style per value (e.g. batch size), in sorted order."""
    ordered = sorted(set(values))
    return {value: LINESTYLES[i % len(LINESTYLES)] for i, value in enumerate(ordered)}


# Colour-blind-safe (Okabe-Ito), no grey: a machine comparison is read by colour alone.
MACHINE_COLORS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000", "#f0e442")
DEVICE_HATCHES = ("", "//", "..", "xx", "\\\\")


def machine_colors(names: Iterable[str]) -> dict[str, str]:
    """Return a colour per machine in the given order (tab20's colours past eight machines, so none repeats up to 20)."""
    ordered = list(dict.fromkeys(names))
    palette = MACHINE_COLORS if len(ordered) <= len(MACHINE_COLORS) else tuple(map(mcolors.to_hex, colormaps["tab20"].colors))
    return {name: palette[i % len(palette)] for i, name in enumerate(ordered)}


def device_hatches(devices: Iterable[str]) -> dict[str, str]:
    """Return a hatch per device, in sorted order: the first (cpu before cuda) plain, the others hatched."""
    return {device: DEVICE_HATCHES[i % len(DEVICE_HATCHES)] for i, device in enumerate(sorted(set(devices)))}


# Eager, the baseline of every ratio, is dark like the reference variant; the others colour-blind-safe (Okabe-Ito).
RUNTIME_COLORS = {"eager": "#3b3b3b", "inductor": "#0072b2", "export": "#e69f00", "onnxruntime": "#009e73",
                  "executorch": "#cc79a7", "openvino": "#56b4e9"}


def runtime_colors(names: Iterable[str]) -> dict[str, str]:
    """Return a colour per runtime in the given order: fixed for the known ones, the machine palette's others after."""
    ordered = list(dict.fromkeys(names))
    spare = iter(c for c in MACHINE_COLORS if c not in RUNTIME_COLORS.values())
    return {name: RUNTIME_COLORS.get(name) or next(spare, "#7f7f7f") for name in ordered}
