"""The command line: `run_bench.py [sweep|list|plot|report|merge|gate|fidelity|models|paper] ...`, one module per command.

The `list` command lives in listing.py: a submodule named `list` would shadow the builtin here.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from bench.analysis.gate import GateError
from bench.axes import SpecError
from bench.cli import fidelity, gate, listing, merge, models, paper, plot, report, sweep
from bench.cli.common import CliError, OneLineParser, add_plugin_option, load_plugins
from bench.results import ResultsError

# command -> (module with configure(parser) and run(args) -> exit status, help)
COMMANDS = {
    "sweep": (sweep, "run a sweep and write a results CSV (default)"),
    "list": (listing, "list the variants and whether they run here"),
    "plot": (plot, "draw the figures of results CSV(s) into plots/<run_id>/"),
    "report": (report, "write a markdown summary next to a results CSV"),
    "merge": (merge, "merge results CSVs of several machines or shards (files or folders) into one"),
    "gate": (gate, "compare results with a baseline CSV, or the working tree with a revision (A/B); exit 1 on a regression"),
    "fidelity": (fidelity, "measure fixed cases after other histories and in a plain process: does the number move?"),
    "models": (models, "time whole backbones (Swin, Slide-Swin, Im2Col-Swin, PVT, ...) and judge the paper's claims"),
    "paper": (paper, "time the models of the paper's six speed arrows, judge each, and redraw its figure with this machine's times"),
}
BAD_INPUT = (SpecError, ResultsError, CliError, GateError)
INTERNAL_ERROR = 70  # sysexits' EX_SOFTWARE: exit 1 means a regression (gate), 2 bad input
DESCRIPTION = ("Benchmark 2-D local attention: `run_bench.py [sweep|list|plot|report|merge|gate|fidelity|models|paper] ...` "
               "(sweep is the default).")


def build_parser() -> OneLineParser:
    """Return the parser with one sub-command per entry of COMMANDS."""
    parser = OneLineParser(prog="run_bench.py", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", parser_class=OneLineParser)
    parser.commands = {}  # name -> its parser
    for name, (module, help_text) in COMMANDS.items():
        sub = parser.commands[name] = commands.add_parser(name, help=help_text, description=help_text)
        add_plugin_option(sub)  # every command: a plugin's variants and axes are read by all of them
        module.configure(sub)
        sub.set_defaults(run=module.run)
    return parser


def _plugins_named(argv: list[str]) -> list[str]:
    """Return the modules of every --plugin in argv (the parser is built after they are imported)."""
    finder = argparse.ArgumentParser(add_help=False)
    finder.add_argument("--plugin", action="append", default=[])
    return finder.parse_known_args(argv)[0].plugin


def main(argv: list[str] | None = None) -> int:
    """Parse argv, run the command, and return its exit status (2 on bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        load_plugins(_plugins_named(argv))  # first: a plugin's variants and axes (and their flags) exist before parsing
    except CliError as err:
        sys.stderr.write(f"run_bench.py: error: {err}\n")
        return 2
    parser = build_parser()
    if argv and argv[0] in ("-h", "--help"):  # the commands, then the default command's own flags
        sweep_help = parser.commands["sweep"].format_help()
        print(parser.format_help() + "\nsweep, the default command (`run_bench.py [sweep] [flags]`):\n\n" + sweep_help)
        return 0
    if not argv or argv[0] not in COMMANDS:
        argv.insert(0, "sweep")
    args, extra = parser.parse_known_args(argv)
    args.command_line = argv  # what a cluster run prints as the command that finishes it
    if extra and args.command != "gate":  # only the A/B gate passes flags on (to its sweeps)
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args, extra) if extra else args.run(args)
    except BAD_INPUT as err:
        sys.stderr.write(f"run_bench.py: error: {err}\n")
        return 2
    except Exception:  # a bug of the harness: never exit 1, which the gate keeps for "regression"
        traceback.print_exc()
        sys.stderr.write(f"run_bench.py: internal error (exit {INTERNAL_ERROR}): the traceback above is a bug of the harness\n")
        return INTERNAL_ERROR
