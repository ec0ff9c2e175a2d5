"""`gate --base-rev REV [sweep flags]`: measure REV's variants and the working tree's, interleaved, and judge.

REV is checked out into a temporary worktree (bench.execution.revision), the cases of the sweep
flags are measured by two workers side by side, one per tree (bench.execution.ab), Callgrind
counts instructions of a small case per variant whose code differs (bench.execution.instructions),
and bench.analysis.ab decides.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.markup import escape
from rich.table import Table

from attention_variants.case import Case
from bench import results
from bench.analysis import ab as verdicts_ab
from bench.analysis.gate import counts, exit_status, machine, ordered_verdicts
from bench.analysis.instructions import judge_instructions, problems
from bench.cli.common import CliError, OneLineParser, add_plugin_option, load_plugins, new_run_id
from bench.cli.console import verdict_table, wide_console
from bench.cli.sweep import configure as configure_sweep
from bench.cli.sweep import isolation_from, overrides, settings_from
from bench.execution import instructions, revision, spec
from bench.execution.ab import ABError, reserved_flag, run_ab, variants_root
from bench.execution.revision import RevisionError
from bench.execution.touched import Touched, variants_touched
from bench.measure.probes import busy_report
from bench.measure.settings import Settings

ROOT = Path(__file__).resolve().parents[2]  # the working tree whose code is "current"


def _sweep_plan(sweep_args: list[str], plugins: list[str]) -> tuple[argparse.Namespace, list[Case], Settings]:
    """Return the sweep flags parsed as the sweep command parses them (with the gate's --plugin), their cases and settings."""
    parser = OneLineParser(prog="run_bench.py gate --base-rev REV [sweep flags]")
    add_plugin_option(parser)
    configure_sweep(parser)
    args = parser.parse_args(sweep_args)
    args.plugin = [*plugins, *args.plugin]
    load_plugins(args.plugin)
    sweep = spec.make_sweep(args.preset, overrides(args))
    return args, spec.cases(sweep), settings_from(args, sweep)


def run(args: argparse.Namespace, sweep_args: list[str]) -> int:
    """Run the A/B comparison the arguments describe; print (and write) the verdicts; return 0, 1 on a regression."""
    settings = verdicts_ab.ABSettings(verdicts_ab.DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance)
    least = verdicts_ab.least_rounds(settings.confidence)
    flag = reserved_flag(sweep_args)
    if flag or args.rounds < least:
        raise CliError(f"{flag} is set by the A/B gate itself" if flag else
                       f"--rounds {args.rounds}: at least {least} are needed for a {settings.confidence:.0%} interval")
    sweep_args_parsed, cases, sweep_settings = _sweep_plan(sweep_args, args.plugin)
    isolation = dataclasses.replace(isolation_from(sweep_args_parsed), cases_per_worker=10_000)
    try:
        base = revision.resolve(ROOT, args.base_rev)
    except RevisionError as err:
        raise CliError(str(err)) from None
    out_dir = args.ab_dir or Path("results") / "ab" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    console = wide_console(140)
    compared = f"base: {base.label()}; current: {revision.working_tree(ROOT)}"
    touched = _touched(base)
    if args.changed_only:
        cases = _changed_cases(cases, touched, console)
        if not cases:
            console.print(escape(f"A/B gate: {compared}; no variant's code differs between the sides (--changed-only): "
                                 "nothing to compare, pass"))
            return 0
    console.print(escape(f"A/B gate: {compared}; {len(cases)} cases x {args.rounds} rounds x 2 sides, "
                         f"sweep flags: {' '.join(sweep_args) or '(the default sweep)'}"))
    busy = busy_report()
    if busy:
        console.print(f"[yellow]warning[/]: {escape(busy)}; the intervals will be wider")
    start = time.perf_counter()
    rows, counts = _measure(args, base, (cases, sweep_settings, isolation, sweep_args_parsed.seed), out_dir, console, touched)
    console.print(f"measured in {time.perf_counter() - start:.0f} s")
    verdicts = judge_instructions(verdicts_ab.compare_ab(rows, settings), counts, None if touched is None else set(touched.own))
    return _report(verdicts, settings, f"{compared}; machine: {machine(rows)}", args, out_dir, console)


def _touched(base: revision.Revision) -> Touched | None:
    """Return the variants whose code differs between base and the working tree (None: git cannot say)."""
    files = revision.changed_files(ROOT, base)
    return None if files is None else variants_touched(files)


def _changed_cases(cases: list[Case], touched: Touched | None, console) -> list[Case]:
    """Return the cases of variants whose code differs (all when unknown), saying which were left out."""
    if touched is None:
        console.print("[yellow]--changed-only[/]: git cannot list the changed files; every variant is measured")
        return cases
    left_out = sorted({case.variant for case in cases} - touched.affected)
    if left_out:
        console.print(escape(f"--changed-only: not measured, their code is the same on both sides (identical code can only "
                             f"show noise): {', '.join(left_out)}"))
    return [case for case in cases if case.variant in touched.affected]


def _measure(args: argparse.Namespace, base: revision.Revision, plan: tuple, out_dir: Path, console, touched: Touched | None):
    """Check base out, measure both sides interleaved, count instructions; return the rows and the counts."""
    cases, sweep_settings, isolation, seed = plan
    with revision.checked_out(ROOT, base) as base_tree, tempfile.TemporaryDirectory(prefix="bench-ab-") as work:
        isolations = {"base": dataclasses.replace(isolation, import_first=(str(variants_root(base_tree, Path(work))),)),
                      "current": isolation}
        commits = {"base": base.commit[:12], "current": revision.head(ROOT)[:12]}
        try:
            paths = run_ab(cases, sweep_settings, isolations, args.rounds, seed, out_dir, new_run_id(), commits,
                           _progress(console, len(cases), args.rounds))
        except ABError as err:
            raise CliError(str(err)) from None
        rows = _load(paths)
        _check_base_measured(rows)
        counts = _instruction_counts(args, {"base": base_tree, "current": ROOT}, rows, console, touched)
    return rows, counts


def _report(verdicts: pd.DataFrame, settings: verdicts_ab.ABSettings, compared: str, args: argparse.Namespace,
            out_dir: Path, console) -> int:
    """Print the verdicts, write the markdown and verdicts.csv; return 1 on a regression, else 0."""
    console.print(_rich_table(verdicts, settings, compared, args.rounds))
    markdown = verdicts_ab.markdown(verdicts, settings, compared, args.rounds)
    for path in filter(None, (args.markdown, out_dir / "gate.md")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown)
    verdicts.to_csv(out_dir / "verdicts.csv", index=False)
    status = exit_status(verdicts)
    console.print(f"gate: {'FAIL' if status else 'pass'} ({counts(verdicts)['regression']} regression(s)); "
                  f"every measurement and the verdicts are in {out_dir}")
    return status


def _progress(console, cases: int, rounds: int):
    """Return the on_row callback: a line per finished round, and one per row that is not ok."""
    current_rows = [0]

    def on_row(side: str, round_number: int, case: Case, row: dict[str, object]) -> None:
        if row.get("status") != "ok":
            console.print(f"  [yellow]{side} {escape(case.variant)} {escape(str(row.get('status')))}[/]: {escape(str(row.get('reason')))}")
        current_rows[0] += side == "current"
        if side == "current" and current_rows[0] % cases == 0:
            console.print(f"  round {round_number}/{rounds} measured")
    return on_row


def _check_base_measured(rows: pd.DataFrame) -> None:
    """Raise CliError when no base row is ok while current rows are: the base's variants do not fit this harness."""
    base, current = rows[rows["side"] == "base"], rows[rows["side"] == "current"]
    if len(base) and not (base["status"] == "ok").any() and (current["status"] == "ok").any():
        raise CliError(f"no case of the base revision could be measured by this harness: {base['reason'].iloc[0]}")


def _load(paths: dict[str, Path]) -> pd.DataFrame:
    return pd.concat([results.load(path).assign(side=side) for side, path in paths.items() if path.is_file()], ignore_index=True)


def _instruction_counts(args: argparse.Namespace, roots: dict[str, Path], rows: pd.DataFrame, console,
                        touched: Touched | None) -> pd.DataFrame:
    """Return Callgrind's instructions per call of the smallest case of each variant whose code differs
    between the sides (every variant when git cannot say; empty when none differs, or when off)."""
    empty = pd.DataFrame(columns=["side", "variant", "per_call", "problem"])
    problem = "--no-instructions" if args.no_instructions else instructions.unavailable()
    if problem:
        console.print(f"[yellow]instruction counts skipped[/]: {problem}; the verdicts use times only")
        return empty
    cases = [case for case in instructions.smallest_cases(rows) if touched is None or case.variant in touched.affected]
    if not cases:
        console.print("instruction counts: no variant's code differs between the sides, nothing to count")
        return empty
    console.print(f"counting instructions under Callgrind (minutes: torch is imported under valgrind, both sides at once): "
                  f"{', '.join(case.variant for case in cases)}")
    start = time.perf_counter()
    counted = instructions.count_all(roots, cases)
    frame = pd.DataFrame([{"side": c.side, "variant": c.case.variant, "per_call": c.per_call, "problem": c.problem} for c in counted])
    console.print(f"  done in {time.perf_counter() - start:.0f} s")
    for line in problems(frame):
        console.print(f"  [yellow]no count[/] {escape(line)}")
    return frame


def _rich_table(verdicts: pd.DataFrame, settings: verdicts_ab.ABSettings, compared: str, rounds: int) -> Table:
    rows = [(verdicts_ab.table_cells(row), str(row["verdict"])) for _, row in ordered_verdicts(verdicts).iterrows()]
    return verdict_table(escape(f"A/B regression gate ({compared})"), verdicts_ab.legend(settings, rounds),
                         verdicts_ab.HEADERS, verdicts_ab.RIGHT_ALIGNED, rows)
