"""What every command shares: one-line argument errors, the CliError of bad input, plugin loading."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import uuid

from bench.axes import MAX_SIZE, ascii_integer
from bench.execution.shards import SAFE_NAME
from bench.messages import first_line

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit seed


class CliError(ValueError):
    """Bad input from the command line; reported as one line with exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def integer(low: int = 1, high: int = MAX_SIZE):
    """Return an argparse type: an integer in ASCII digits within [low, high], else a one-line error naming the range."""
    def parse(text: str) -> int:
        value = ascii_integer(text)
        if value is None:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer (ASCII digits 0-9)")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: expected {low} to {high}")
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


def add_no_plots_option(parser: argparse.ArgumentParser, draws: bool = True) -> None:
    """Add --no-plots to a command, so every command accepts it (a no-op where the command draws nothing)."""
    parser.add_argument("--no-plots", action="store_true",
                        help="do not draw the figures into plots/<run_id>/ at the end" if draws
                        else "accepted for every command alike: this command draws no figures")


def add_plugin_option(parser: argparse.ArgumentParser) -> None:
    """Add --plugin, which every command that touches variants needs."""
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it registers variants or axes of its own); repeatable")


def load_plugins(modules: list[str]) -> None:
    """Import each plugin module (which registers its variants); a failure is a CliError."""
    for module in modules:
        try:
            importlib.import_module(module)
        except (Exception, SystemExit) as err:  # any import-time failure is the plugin's, reported in one line
            raise CliError(f"plugin {module!r} failed to import: {type(err).__name__}: {first_line(err)}") from None


def new_run_id() -> str:
    """Return a sortable, unique run id: UTC time plus a short random suffix."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def run_id_of(args: argparse.Namespace) -> str:
    """Return --run-id (checked: it names files and folders) or a new run id."""
    if args.run_id is None:
        return new_run_id()
    if not SAFE_NAME.fullmatch(args.run_id):
        raise CliError(f"bad --run-id {args.run_id!r}: use letters, digits, '.', '_' and '-' (it names files)")
    return args.run_id
