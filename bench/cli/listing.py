"""The `list` command: every variant, its family, and whether it can run on a device here (and why not)."""

from __future__ import annotations

import argparse

from rich.table import Table

import attention_variants as av
from attention_variants.case import Case
from bench.cli.common import CliError, add_plugin_option, load_plugins
from bench.cli.console import wide_console
from bench.execution.spec import DEVICES
from bench.measure.machine import device_name, device_unavailable


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the list command's options."""
    add_plugin_option(parser)
    parser.add_argument("--device", default="cpu", help="device to check support on (default: cpu)")


def run(args: argparse.Namespace) -> int:
    """Print every variant, its family and whether it can run here; return 0."""
    load_plugins(args.plugin)
    if args.device not in DEVICES:
        raise CliError(f"unknown device {args.device!r} (known: {', '.join(DEVICES)})")
    table = Table(title=f"variants on {args.device} ({device_name(args.device)})")
    for header in ("variant", "family", "runs here", "description"):
        table.add_column(header, no_wrap=header in ("variant", "family"))  # names stay greppable
    probe = Case("", device=args.device)
    for variant in av.available():
        reason = device_unavailable(args.device) or variant.supports(probe.replace(variant=variant.name))
        table.add_row(variant.name, variant.family, "yes" if reason is None else f"no: {reason}", variant.description)
    wide_console().print(table)
    return 0
