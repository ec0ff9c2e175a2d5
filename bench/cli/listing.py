"""The `list` command: every variant, its family, and whether it can run on a device here (and why not)."""

from __future__ import annotations

import argparse

from rich.table import Table

import attention_variants as av
from attention_variants.case import Case
from bench.axes import DEVICES
from bench.cli.common import CliError, load_plugins
from bench.cli.console import wide_console
from bench.measure.machine import device_name, device_unavailable


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the list command's options."""
    parser.add_argument("--device", default="cpu", help="device to check support on (default: cpu)")


def runs_here(variant: av.Variant, small: Case, default: Case) -> str:
    """Return whether the variant runs a small case here, and the limit it hits at the default case's size, if any."""
    unavailable = device_unavailable(small.device)
    if unavailable:
        return f"no: {unavailable}"
    reason = variant.supports(small.replace(variant=variant.name))
    if reason:
        return f"no: {reason}"
    limit = variant.supports(default.replace(variant=variant.name))
    return f"yes; not at {default.height}x{default.width} {default.pass_name}: {limit}" if limit else "yes"


def run(args: argparse.Namespace) -> int:
    """Print every variant, its family and whether it can run here; return 0."""
    load_plugins(args.plugin)
    if args.device not in DEVICES:
        raise CliError(f"unknown device {args.device!r} (known: {', '.join(DEVICES)})")
    table = Table(title=f"variants on {args.device} ({device_name(args.device)})")
    for header in ("variant", "family", "runs here", "description"):
        table.add_column(header, no_wrap=header in ("variant", "family"))  # names stay greppable
    small, default = Case(variant="", device=args.device, height=14, width=14, kernel_size=3), Case(variant="", device=args.device)
    for variant in av.available():
        table.add_row(variant.name, variant.family, runs_here(variant, small, default), variant.description)
    wide_console().print(table)
    return 0
