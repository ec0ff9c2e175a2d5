"""`sweep --executor submitit|submitit-local`: one job per shard, a progress display over them, a summary, one merged CSV."""

from __future__ import annotations

import argparse
import copy
import os
import re
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from bench.execution.cluster import ClusterOptions, Shard

from attention_variants.case import Case
from bench.cli.common import CliError, integer, run_id_of
from bench.cli.console import message_console, wide_console
from bench.execution.shards import case_shapes, shard_cases, shard_files
from bench.execution.sweep import plan_rounds
from bench.messages import first_line
from bench.results.merge import merge_files, summary, write_merged

EXECUTORS = ("local", "submitit", "submitit-local")
# How often the submitting process looks at its jobs and their CSVs (seconds; the tests look more often).
POLL_S = float(os.environ.get("BENCH_CLUSTER_POLL_S", "2.0"))
TEMPFAIL = 75  # sysexits' EX_TEMPFAIL: a shard failed; the same command with --run-id finishes the run


def configure_cluster(parser: argparse.ArgumentParser) -> None:
    """Add the options of a sweep over several machines (docs/cluster.md)."""
    group = parser.add_argument_group("several machines (docs/cluster.md): the cases split into shards, one job per shard")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local: worker processes on this machine; submitit: one Slurm job per shard, each on an "
                            "exclusive node; submitit-local: submitit's local processes (laptops, tests) (default: %(default)s)")
    group.add_argument("--shards", type=integer(), default=1, metavar="N", help="split the cases into N shards (default: %(default)s)")
    group.add_argument("--slurm-partition", metavar="NAME", help="the Slurm partition of the jobs (a GPU type, say)")
    group.add_argument("--slurm-constraint", metavar="FEATURES", help="Slurm --constraint, e.g. h100 or 'a100|h100'")
    group.add_argument("--slurm-gpus", type=integer(0), metavar="N", help="GPUs per job (Slurm --gpus-per-node)")
    group.add_argument("--slurm-time", default="60", metavar="MINUTES",
                       help="time limit of each job: minutes, or HH:MM:SS (default: %(default)s); a job that reaches it "
                            "is requeued and resumes")
    group.add_argument("--max-retries", type=integer(0), default=2, metavar="K",
                       help="resubmit a failed or preempted job up to K times (default: %(default)s)")


def minutes(text: str) -> int:
    """Return the minutes of '90' or '1:30:00' (CliError otherwise)."""
    match = re.fullmatch(r"(\d+)|(\d+):(\d{2}):(\d{2})", text.strip())
    if match and match[1]:
        total = int(match[1])
    elif match:
        total = int(match[2]) * 60 + int(match[3]) + (int(match[4]) > 0)
    else:
        total = 0
    if total < 1:
        raise CliError(f"bad --slurm-time {text!r}: expected minutes (e.g. 90) or HH:MM:SS, at least one minute")
    return total


def options_from(args: argparse.Namespace, shapes: int) -> ClusterOptions:
    """Return the cluster options of the flags (CliError on a bad value or a flag that does not apply)."""
    if args.resume is not None or args.shard is not None:
        raise CliError("--resume and --shard are for one machine: to finish a cluster run, give its --run-id ID")
    if not 1 <= args.shards <= shapes:
        raise CliError(f"bad --shards {args.shards}: expected 1 to {shapes} (a shard holds whole case shapes; "
                       f"this sweep has {shapes})")
    if args.slurm_gpus is not None and args.slurm_gpus < 0:
        raise CliError(f"bad --slurm-gpus {args.slurm_gpus}: expected 0 or more")
    from bench.execution.cluster import ClusterOptions

    return ClusterOptions(args.executor, args.shards, args.slurm_partition, args.slurm_constraint, args.slurm_gpus,
                          minutes(args.slurm_time), args.max_retries)


def resume_command(args: argparse.Namespace, run_id: str) -> str:
    """Return the command that finishes this run: the same flags, with --run-id."""
    argv = list(getattr(args, "command_line", []) or [])
    if "--run-id" not in argv and not any(item.startswith("--run-id=") for item in argv):
        argv += ["--run-id", run_id]
    return shlex.join(["python", "run_bench.py", *argv])


def _cluster_module():
    """Return bench.execution.cluster (CliError where submitit, an extra, is not installed)."""
    try:
        from bench.execution import cluster
    except ImportError as err:
        raise CliError(f"a cluster executor needs submitit ({first_line(err)}): pip install -e '.[cluster]'") from None
    return cluster


def _places(args: argparse.Namespace, run_id: str) -> tuple[Path, Path]:
    """Return the run's folder (its shard CSVs and job logs) and the merged CSV (CliError where that is another run's)."""
    root = args.out.parent if args.out else Path("results")
    folder, merged_out = (root / run_id).resolve(), (args.out or root / f"{run_id}.csv").resolve()
    if merged_out.exists() and not folder.is_dir():
        raise CliError(f"{merged_out} exists and is not this run's: choose another --out (nothing is overwritten)")
    return folder, merged_out


def run_on_cluster(args: argparse.Namespace, cases: list[Case]) -> int:
    """Submit one job per shard, follow them, merge their CSVs; return 0, TEMPFAIL when a shard failed, 130 on Ctrl-C."""
    cluster = _cluster_module()
    options = options_from(args, len(case_shapes(cases)))
    run_id = run_id_of(args)
    folder, merged_out = _places(args, run_id)
    try:
        executor = cluster.make_executor(options, folder / "submitit")
    except cluster.ClusterError as err:
        raise CliError(str(err)) from None
    cluster.quiet_submitit()
    shards = [cluster.Shard(index, plan_rounds(shard_cases(cases, index, options.shards), args.repeats, args.seed))
              for index in range(1, options.shards + 1)]
    job_args = copy.copy(args)
    job_args.out = job_args.resume = None
    console = message_console()
    console.print(escape(f"run {run_id}: {sum(len(s.plan) for s in shards)} cases in {options.shards} shard(s), executor "
                         f"{options.executor} -> {folder}/"))
    try:
        _follow(shards, executor, job_args, folder, options, console)
    except KeyboardInterrupt:
        cluster.cancel(shards)
        console.print(f"[yellow]interrupted[/]: the jobs were cancelled; rows written are kept in {escape(str(folder))}/; "
                      f"finish with: {escape(resume_command(args, run_id))}")
        return 130
    _summary(shards, folder, console)
    _merge(folder, merged_out, args, console)
    failed = [shard for shard in shards if shard.state == "failed"]
    if failed:
        console.print(f"[red]{len(failed)} shard(s) failed[/] (job logs in {escape(str(folder / 'submitit'))}/); "
                      f"finish the run with: {escape(resume_command(args, run_id))}")
        return TEMPFAIL
    return 0


def _follow(shards: list[Shard], executor, job_args: argparse.Namespace, folder: Path, options: ClusterOptions,
            console: Console) -> None:
    """Submit the unfinished shards and show their progress until every one is done or failed."""
    from bench.execution.cluster import poll, rows_done, submit

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console)
    with progress:
        total = progress.add_task("all shards", total=sum(len(shard.plan) for shard in shards))
        tasks = {shard.index: progress.add_task(f"shard {shard.index}", total=len(shard.plan)) for shard in shards}
        for shard in shards:
            if rows_done(shard, folder) == len(shard.plan):
                shard.state = "done"  # a finished run given again with --run-id: nothing to measure
            else:
                submit(executor, shard, job_args, len(shards), folder)
        while True:
            for shard in shards:
                poll(shard, executor, job_args, len(shards), folder, options,
                     lambda text: progress.console.print(f"[yellow]note[/]: {escape(text)}"))
            done = {shard.index: rows_done(shard, folder) for shard in shards}
            for shard in shards:
                jobs = f" job {shard.job_ids[-1]}" if shard.job_ids else ""
                progress.update(tasks[shard.index], completed=done[shard.index],
                                description=escape(f"shard {shard.index}/{len(shards)}{jobs} {shard.state.lower()}"))
            progress.update(total, completed=sum(done.values()))
            if all(shard.finished for shard in shards):
                return
            time.sleep(POLL_S)


def _summary(shards: list[Shard], folder: Path, console: Console) -> None:
    """Print one line per shard: its cases, rows, state, hosts and jobs, and why it failed."""
    from bench.execution.cluster import rows_done

    table = Table(title="shards", title_justify="left")
    for header in ("shard", "cases", "rows", "state", "host(s)", "job(s)", "why"):
        table.add_column(header, justify="right" if header in ("shard", "cases", "rows") else "left")
    for shard in shards:
        hosts = [path.stem.split("-", 2)[2] for path in shard_files(folder, shard.index)]
        table.add_row(str(shard.index), str(len(shard.plan)), str(rows_done(shard, folder)), shard.state,
                      escape(", ".join(hosts)), escape(", ".join(shard.job_ids) or "-"), escape(shard.reason))
    wide_console().print(table)


def _merge(folder: Path, out: Path, args: argparse.Namespace, console: Console) -> None:
    """Merge the run's shard CSVs into `out`, then draw its figures (unless --no-plots)."""
    if not any(folder.glob("shard-*.csv")):
        console.print("no shard wrote a row: nothing to merge")
        return
    merged = merge_files(sorted(folder.glob("shard-*.csv")))
    write_merged(merged, out)
    console.print(escape(summary(merged, out)))
    console.print(escape(f"report: python run_bench.py report {out}  (compare machines: docs/cluster.md)"))
    if not args.no_plots:
        from bench.cli.plot import plot_after_sweep  # matplotlib only when figures are drawn

        plot_after_sweep(out, console)
