"""`gate --base-rev REV [sweep flags]`: measure REV's code and the working tree's, interleaved, and judge.

REV is checked out into a temporary worktree (bench.execution.revision), both sides run the
same sweep round by round (bench.execution.ab), Callgrind counts instructions of a small case
per variant on both sides (bench.execution.instructions), and bench.analysis.ab decides.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from rich.markup import escape
from rich.table import Table

from bench import results
from bench.analysis import ab as verdicts_ab
from bench.analysis.gate import machine
from bench.analysis.instructions import judge_instructions, problems
from bench.cli.common import CliError
from bench.cli.console import VERDICT_STYLE, wide_console
from bench.execution import instructions, revision
from bench.execution.ab import ABError, SideRound, reserved_flag, run_ab
from bench.execution.revision import RevisionError

ROOT = Path(__file__).resolve().parents[2]  # the working tree whose code is "current"


def run(args: argparse.Namespace, sweep_args: list[str]) -> int:
    """Run the A/B comparison the arguments describe; print (and write) the verdicts; return 0, 1 on a regression."""
    settings = verdicts_ab.ABSettings(verdicts_ab.DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance)
    least = verdicts_ab.least_rounds(settings.confidence)
    flag = reserved_flag(sweep_args)
    if flag or args.rounds < least:
        raise CliError(f"{flag} is set by the A/B gate itself" if flag else
                       f"--rounds {args.rounds}: at least {least} are needed for a {settings.confidence:.0%} interval")
    try:
        base = revision.resolve(ROOT, args.base_rev)
    except RevisionError as err:
        raise CliError(str(err)) from None
    out_dir = args.ab_dir or Path("results") / "ab" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    console = wide_console(140)
    compared = f"base: {base.label()}; current: {revision.working_tree(ROOT)}"
    console.print(escape(f"A/B gate: {compared}; {args.rounds} rounds, sweep flags: {' '.join(sweep_args) or '(the default sweep)'}"))
    with revision.checked_out(ROOT, base) as base_root:
        roots = {"base": base_root, "current": ROOT}
        try:
            done = run_ab(roots, sweep_args, args.rounds, out_dir, lambda d: console.print(_progress(d, args.rounds)))
        except ABError as err:
            raise CliError(str(err)) from None
        rows = _load(done)
        counts, own = _instruction_counts(args, roots, rows, console, base)
    verdicts = judge_instructions(verdicts_ab.compare_ab(rows, settings), counts, own)
    compared += f"; machine: {machine(rows)}"
    console.print(_rich_table(verdicts, settings, compared, args.rounds))
    markdown = verdicts_ab.markdown(verdicts, settings, compared, args.rounds)
    for path in filter(None, (args.markdown, out_dir / "gate.md")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown)
    verdicts.to_csv(out_dir / "verdicts.csv", index=False)
    status = int((verdicts["verdict"] == "regression").any())
    console.print(f"gate: {'FAIL' if status else 'pass'} ({int((verdicts['verdict'] == 'regression').sum())} regression(s)); "
                  f"every round's rows and the verdicts are in {out_dir}")
    return status


def _progress(done: SideRound, rounds: int) -> str:
    return f"  round {done.round}/{rounds}: {done.side:<7} swept in {done.seconds:.0f} s"


def _load(done: list[SideRound]) -> pd.DataFrame:
    frames = [results.load(d.csv).assign(side=d.side, ab_round=d.round) for d in done]
    return pd.concat(frames, ignore_index=True)


def _instruction_counts(args: argparse.Namespace, roots: dict[str, Path], rows: pd.DataFrame, console,
                        base: revision.Revision) -> tuple[pd.DataFrame, set[str] | None]:
    """Return Callgrind's instructions per call of the smallest case of each variant whose code differs
    between the sides (empty when none does, or when off), and the variants whose own module changed (None: unknown)."""
    empty = pd.DataFrame(columns=["side", "variant", "per_call", "problem"])
    files = revision.changed_files(ROOT, base)
    own, shared = instructions.variants_touched(files) if files is not None else (set(), True)
    known = None if files is None else own
    problem = "--no-instructions" if args.no_instructions else instructions.unavailable()
    if problem:
        console.print(f"[yellow]instruction counts skipped[/]: {problem}; the verdicts use times only")
        return empty, known
    cases = [case for case in instructions.smallest_cases(rows) if shared or case.variant in own]
    if not cases:
        console.print("instruction counts: no variant's code differs between the sides, nothing to count")
        return empty, known
    console.print(f"counting instructions under Callgrind (minutes: torch is imported under valgrind, both sides at once): "
                  f"{', '.join(case.variant for case in cases)}" + (" (a shared file of attention_variants/ changed)" if shared else ""))
    start = time.perf_counter()
    counted = instructions.count_all(roots, cases)
    frame = pd.DataFrame([{"side": c.side, "variant": c.case.variant, "per_call": c.per_call, "problem": c.problem} for c in counted])
    console.print(f"  done in {time.perf_counter() - start:.0f} s")
    for line in problems(frame):
        console.print(f"  [yellow]no count[/] {escape(line)}")
    return frame, known


def _rich_table(verdicts: pd.DataFrame, settings: verdicts_ab.ABSettings, compared: str, rounds: int) -> Table:
    table = Table(title=escape(f"A/B regression gate ({compared})"), caption=verdicts_ab.legend(settings, rounds))
    for header in verdicts_ab.HEADERS:
        table.add_column(header, justify="right" if "ms" in header or header in ("change", "instructions") else "left")
    for _, row in verdicts_ab.ordered(verdicts).iterrows():
        table.add_row(*map(escape, verdicts_ab.table_cells(row)), style=VERDICT_STYLE.get(str(row["verdict"])))
    return table
