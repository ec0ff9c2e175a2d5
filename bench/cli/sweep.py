"""The `sweep` command (the default): run the cases of a preset and flags, print the summary, draw figures."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from attention_variants.case import Case
from bench import results
from bench.analysis.summary import failure_counts, noise_line
from bench.analysis.verdict import CLAIM, verdict_lines
from bench.axes import AXES
from bench.cli.cluster import configure_cluster, run_on_cluster
from bench.cli.common import MAX_SEED, CliError, add_no_plots_option, integer, load_plugins, run_id_of
from bench.cli.console import message_console, print_failures, summary_table, wide_console
from bench.cli.plot import plot_after_sweep
from bench.execution import allocator as allocators
from bench.execution import spec
from bench.execution.early import default_threads
from bench.execution.isolation import Isolation
from bench.execution.shards import ShardError, parse_shard, shard_cases
from bench.execution.sweep import pending, plan_rounds, recorded_keys, run_sweep
from bench.measure.probes import busy_report, cpu_name
from bench.measure.settings import Settings
from bench.results import store
from bench.results.samples import keep_samples_of
from bench.results.selection import median_over_rounds

Plan = list[tuple[int, Case]]  # (round, case) in running order
LEGACY_FLAG = "--compiled"  # before --runtimes: false,true is eager,inductor (spec.LEGACY_COMPILED)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the sweep's options to parser."""
    parser.add_argument("--preset", default="quick", help=f"a preset in bench/presets ({', '.join(spec.preset_names())}) or a .toml path")
    for axis in AXES.values():  # a plugin's axes too, when its --plugin came first (bench/cli/__init__.py)
        parser.add_argument(axis.flag, dest=axis.name, metavar="A,B,...",
                            help=f"override the preset's {axis.name}" + (f": {axis.help}" if axis.help else ""))
    parser.add_argument(LEGACY_FLAG, dest=spec.LEGACY_COMPILED, metavar="A,B,...",
                        help="the old form of --runtimes: false,true means eager,inductor")
    parser.add_argument("--out", type=Path, help="results CSV to append to (default: results/<run_id>.csv)")
    parser.add_argument("--threads", type=integer(), default=default_threads(), help="intra-op threads (default: %(default)s)")
    parser.add_argument("--seed", type=integer(0, MAX_SEED), default=0, help="seed of the random inputs")
    parser.add_argument("--min-run-s", type=float, help="least measuring time per case (preset's min_run_s)")
    parser.add_argument("--max-run-s", type=float, help="most measuring time per case (preset's max_run_s)")
    # -- reliability (docs/reliability.md) --
    parser.add_argument("--resume", type=Path, metavar="RESULTS.csv",
                        help="append to RESULTS.csv, skipping the cases it already holds (same sweep options)")
    parser.add_argument("--case-timeout", type=float, default=Isolation.case_timeout_s, metavar="SECONDS",
                        help="kill a case's worker after this long and record `timeout` (default: %(default)g)")
    parser.add_argument("--max-memory-gb", type=float, metavar="GB",
                        help="memory one case may add to its worker; past it the case is `oom` (default: 80%% of this machine's memory)")
    parser.add_argument("--cases-per-worker", type=integer(0), default=Isolation.cases_per_worker, metavar="N",
                        help="cases one worker process runs before it is replaced; 0: no isolation (default: %(default)s)")
    add_no_plots_option(parser)
    parser.add_argument("--recalibrate", action="store_true",
                        help="measure the roofline's peaks again instead of this machine's cached ones")
    # -- trustworthy numbers (docs/fidelity.md) --
    parser.add_argument("--allocator", default=allocators.DEFAULT, choices=list(allocators.ALLOCATORS),
                        help="C allocator of the workers: steady (warm memory reused), cold (page faults every call), "
                             "jemalloc, tcmalloc (default: %(default)s)")
    parser.add_argument("--repeats", type=integer(), default=1, metavar="R",
                        help="run the whole sweep R times in interleaved rounds, each in a shuffled order (default: 1)")
    parser.add_argument("--run-id", metavar="ID", help="the run's id (default: the time and a random suffix); "
                                                       "with a cluster executor, the id of a run to finish")
    parser.add_argument("--shard", metavar="I/N", help="run only shard I of N of the cases (all variants of a shape together)")
    configure_cluster(parser)


def overrides(args: argparse.Namespace) -> dict[str, object]:
    """Return the sweep axes and run times the flags override."""
    changed: dict[str, object] = {
        axis: spec.parse_cli_list(axis, getattr(args, axis))
        for axis in (*AXES, spec.LEGACY_COMPILED) if getattr(args, axis, None) is not None
    }
    if args.min_run_s is not None:
        changed["min_run_s"] = args.min_run_s
    if args.max_run_s is not None:
        changed["max_run_s"] = args.max_run_s
    return changed


def settings_from(args: argparse.Namespace, sweep: spec.Sweep) -> Settings:
    """Return the measurement settings of the flags and the sweep."""
    return Settings(args.threads, sweep.warmup_s, sweep.min_run_s, sweep.max_run_s, args.seed, allocator=args.allocator)


def isolation_from(args: argparse.Namespace) -> Isolation:
    """Return the isolation the flags ask for (CliError on a bad limit or an allocator that cannot run)."""
    checks = (("--case-timeout", args.case_timeout, 0 < args.case_timeout < math.inf, "a positive number of seconds"),
              ("--max-memory-gb", args.max_memory_gb, args.max_memory_gb is None or 0 < args.max_memory_gb < math.inf,
               "a positive number of GB"))
    for flag, value, good, expected in checks:  # comparisons are False for NaN, so NaN is rejected too
        if not good:
            raise CliError(f"bad {flag} {value}: expected {expected}")
    problem = allocators.unavailable(args.allocator)
    if problem is None and args.cases_per_worker == 0:
        problem = allocators.apply_in_process(args.allocator)
    if problem:
        raise CliError(problem)
    return Isolation(args.case_timeout, args.max_memory_gb, args.cases_per_worker, tuple(args.plugin),
                     allocator=args.allocator, threads=args.threads)


def check_memory_cap(cases: list[Case], isolation: Isolation) -> None:
    """Raise CliError when a case's q, k and v alone need more memory than a case may add (--max-memory-gb, or 80 %
    of this machine's)."""
    def input_bytes(case: Case) -> int:
        return 3 * case.input_elements * case.torch_dtype.itemsize

    largest = max(cases, key=input_bytes, default=None)
    if largest is None or input_bytes(largest) <= isolation.max_memory_bytes:
        return
    cap = f"--max-memory-gb {isolation.max_memory_gb:g}" if isolation.max_memory_gb is not None else "80 % of this machine's memory"
    raise CliError(f"the {largest.dtype} case b{largest.batch} h{largest.heads} {largest.height}x{largest.width} "
                   f"d{largest.head_dim} needs {input_bytes(largest) / 2**30:.3g} GiB for q, k and v alone, more than {cap}")


def sweep_cases(args: argparse.Namespace, sweep: spec.Sweep) -> list[Case]:
    """Return the sweep's cases, or with --shard I/N those of shard I."""
    cases = spec.cases(sweep)
    if args.shard is None:
        return cases
    try:
        return shard_cases(cases, *parse_shard(args.shard))
    except ShardError as err:
        raise CliError(str(err)) from None


def _resume(args: argparse.Namespace, plan: Plan, console: Console) -> tuple[Path, str, Plan]:
    """Return where to write, the run id, and the (round, case) pairs still to run (all of them without --resume)."""
    if args.resume is None:
        run_id = run_id_of(args)
        return args.out or Path("results") / f"{run_id}.csv", run_id, plan
    if args.out is not None and args.out.resolve() != args.resume.resolve():
        raise CliError("--out and --resume name different files: --resume appends to its own file")
    if args.resume.is_file() and args.resume.stat().st_size == 0:  # a first append that failed (a full disk) left it empty
        recorded = pd.DataFrame(columns=list(results.columns()))
    else:
        recorded = store.load(args.resume)  # the rows only: which cases are done (their blocks are kept by keep_samples_of)
    if recorded.attrs.get("partial_last_line"):
        console.print(f"[yellow]note[/]: {args.resume} ended with a partial row (a killed writer); it is ignored and rerun")
    todo = pending(plan, recorded_keys(recorded))
    keep_samples_of(args.resume, recorded)  # a row lost to a kill is measured again: its old blocks go
    ids = recorded["run_id"].dropna()
    run_id = str(ids.iloc[-1]) if len(ids) else run_id_of(args)  # a resumed run keeps its id
    if args.run_id is not None and run_id != args.run_id:
        raise CliError(f"--run-id {args.run_id} but {args.resume} holds run {run_id}: leave out --run-id to resume it")
    console.print(f"resume {args.resume}: {len(plan) - len(todo)} of {len(plan)} cases already recorded, {len(todo)} to run")
    if len(todo) == len(plan) and len(recorded):
        console.print("[yellow]note[/]: no case of this sweep is in the file: are the sweep options the same?")
    return args.resume, run_id, todo


def _measure_with_progress(plan: Plan, settings: Settings, out: Path, run_id: str, isolation: Isolation,
                           console: Console, recalibrate: bool = False,
                           begin: Callable[[], None] = lambda: None) -> tuple[list[dict[str, object]], bool]:
    """Run the plan under a progress bar; return the rows written and whether Ctrl-C ended it."""
    rows: list[dict[str, object]] = []
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    with progress:
        task = progress.add_task("starting", total=len(plan))

        def on_start(case: Case) -> None:
            progress.update(task, description=f"{case.variant} {case.device} {case.height}x{case.width} b{case.batch} {case.pass_name}")

        def on_row(case: Case, row: dict[str, object]) -> None:
            rows.append(row)
            progress.advance(task)

        try:
            run_sweep(plan, settings, out, run_id, on_start=on_start, on_row=on_row, isolation=isolation,
                      on_note=lambda text: console.print(f"[yellow]warning[/]: {escape(text)}"), recalibrate=recalibrate,
                      on_begin=begin)
        except KeyboardInterrupt:
            return rows, True
    return rows, False


def run(args: argparse.Namespace) -> int:
    """Run the sweep the arguments describe; return the exit status."""
    load_plugins(args.plugin)
    isolation = isolation_from(args)
    sweep = spec.make_sweep(args.preset, overrides(args))
    settings = settings_from(args, sweep)
    check_memory_cap(spec.cases(sweep), isolation)
    if args.executor != "local":
        return run_on_cluster(args, spec.cases(sweep))
    console = message_console()
    out, run_id, plan = _resume(args, plan_rounds(sweep_cases(args, sweep), args.repeats, args.seed), console)
    problem = results.unwritable(out)
    if problem:  # before anything is measured
        raise CliError(f"cannot write the results: {problem}")
    rounds = f" in {args.repeats} rounds" if args.repeats > 1 else ""

    def begin() -> None:  # while the first worker starts
        console.print(escape(f"run {run_id}: {len(plan)} cases{rounds}, {settings.threads} threads, allocator {args.allocator}, "
                             f"{cpu_name()} -> {out}"))
        busy = busy_report()
        if busy:
            console.print(f"[yellow]warning[/]: {busy}; timings will be noisier (compare ratios from one run)")

    rows, interrupted = _measure_with_progress(plan, settings, out, run_id, isolation, console, args.recalibrate, begin)
    _report(rows, len(plan), args, out, run_id, console)
    if interrupted:
        if out.exists():
            console.print(f"[yellow]interrupted[/]: the rows above are saved; finish with --resume {escape(str(out))}")
        else:
            console.print("[yellow]interrupted[/] before the first row: nothing was written; run the same command again")
        return 130
    return 0


def _report(rows: list[dict[str, object]], planned: int, args: argparse.Namespace, out: Path, run_id: str,
            console: Console) -> None:
    """Print the run's table, failures and noise, draw its figures, and end with the verdict."""
    measured = pd.DataFrame(rows, columns=list(results.columns()))  # every column, even if no row filled it
    if out.exists():  # the whole run (a resumed one too), with its block times: rounds pool them
        recorded = results.load(out)
        measured = recorded[recorded["run_id"].astype(str) == run_id]
    frame = median_over_rounds(measured)
    if not frame.empty:
        wide_console().print(summary_table(frame, title=f"run {run_id}"))
        print_failures(frame, console)
        console.print(escape(failure_counts(frame)))
        console.print(escape(noise_line(frame)))
    console.print(f"{len(rows)} of {planned} rows written to {escape(str(out))}")
    if frame.empty:
        return
    if rows and not args.no_plots:
        plot_after_sweep(out, console)
    for line in verdict_lines(measured):
        console.print(escape(line), style="bold" if line.startswith(CLAIM) else None)
