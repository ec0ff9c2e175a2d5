"""Benchmark 2-D local attention: `python run_bench.py [sweep|list|plot|report|gate] ...` (sweep is the default)."""

from __future__ import annotations

import argparse
import sys

from bench import cli, gate, plots, report
from bench.results import ResultsError
from bench.spec import SpecError

# command -> (configure(parser), run(args) -> exit status, help)
COMMANDS = {
    "sweep": (cli.configure_sweep, cli.run_sweep_command, "run a sweep and write a results CSV (default)"),
    "list": (cli.configure_list, cli.run_list_command, "list the variants and whether they run here"),
    "plot": (plots.configure_plot, plots.run_plot_command, "draw the figures of results CSV(s) into plots/<run_id>/"),
    "report": (report.configure_report, report.run_report_command, "write a markdown summary next to a results CSV"),
    "gate": (gate.configure_gate, gate.run_gate_command, "compare results with a baseline CSV; exit 1 on a regression"),
}
BAD_INPUT = (SpecError, ResultsError, cli.CliError, gate.GateError)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with one sub-command per entry of COMMANDS."""
    parser = OneLineParser(prog="run_bench.py", description=__doc__)
    commands = parser.add_subparsers(dest="command", parser_class=OneLineParser)
    for name, (configure, run, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        configure(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse argv, run the command, and return its exit status (2 on bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "sweep")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BAD_INPUT as err:
        sys.stderr.write(f"run_bench.py: error: {err}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
