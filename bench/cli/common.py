"""What every command shares: one-line argument errors, the CliError of bad input, plugin loading."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import uuid

from bench.execution.shards import SAFE_NAME
from bench.messages import first_line


class CliError(ValueError):
    """Bad input from the command line; reported as one line with exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def add_plugin_option(parser: argparse.ArgumentParser) -> None:
    """Add --plugin, which every command that touches variants needs."""
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it registers extra variants); repeatable")


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
