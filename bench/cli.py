"""The `sweep` and `list` commands of run_bench.py."""

from __future__ import annotations

import argparse
import importlib
import time
import uuid
from pathlib import Path

import pandas as pd
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import attention_variants as av
from attention_variants.case import Case
from bench import env, spec
from bench.runner import Settings, run_sweep
from bench.summary import print_failures, summary_table

SWEEP_FLAGS = {  # CLI flag -> sweep axis; values are comma-separated lists
    "--variants": "variants",
    "--devices": "devices",
    "--dtypes": "dtypes",
    "--batch": "batch",
    "--resolutions": "resolutions",
    "--heads": "heads",
    "--head-dim": "head_dim",
    "--kernel-sizes": "kernel_sizes",
    "--passes": "passes",
    "--compiled": "compiled",
}


class CliError(ValueError):
    """Bad input from the command line; reported as one line with exit status 2."""


def load_plugins(modules: list[str]) -> None:
    """Import each plugin module (which registers its variants); a failure is a CliError."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as err:  # any import-time failure is the plugin's, reported in one line
            raise CliError(f"plugin {module!r} failed to import: {type(err).__name__}: {err}") from None


def add_common(parser: argparse.ArgumentParser) -> None:
    """Add the options that every command that touches variants needs."""
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it registers extra variants); repeatable")


def configure_sweep(parser: argparse.ArgumentParser) -> None:
    """Add the sweep's options to parser."""
    add_common(parser)
    parser.add_argument("--preset", default="quick", help=f"a preset in bench/presets ({', '.join(spec.preset_names())}) or a .toml path")
    for flag, axis in SWEEP_FLAGS.items():
        parser.add_argument(flag, dest=axis, metavar="A,B,...", help=f"override the preset's {axis}")
    parser.add_argument("--out", type=Path, help="results CSV to append to (default: results/<run_id>.csv)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--min-run-s", type=float, help="least measuring time per case (preset's min_run_s)")
    parser.add_argument("--max-run-s", type=float, help="most measuring time per case (preset's max_run_s)")
    parser.add_argument("--no-plots", action="store_true", help="do not draw the figures into plots/<run_id>/ at the end")


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = {
        axis: spec.parse_cli_list(axis, getattr(args, axis)) for axis in SWEEP_FLAGS.values() if getattr(args, axis) is not None
    }
    if args.min_run_s is not None:
        overrides["min_run_s"] = args.min_run_s
    if args.max_run_s is not None:
        overrides["max_run_s"] = args.max_run_s
    return overrides


def new_run_id() -> str:
    """Return a sortable, unique run id: UTC time plus a short random suffix."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def run_sweep_command(args: argparse.Namespace) -> int:
    """Run the sweep the arguments describe; return the exit status."""
    load_plugins(args.plugin)
    if args.threads < 1:
        raise CliError(f"bad --threads {args.threads}: expected a positive integer")
    sweep = spec.make_sweep(args.preset, _overrides(args))
    cases = spec.cases(sweep)
    run_id = new_run_id()
    out = args.out or Path("results") / f"{run_id}.csv"
    settings = Settings(args.threads, sweep.warmup_s, sweep.min_run_s, sweep.max_run_s, args.seed)
    console = Console(stderr=True)
    console.print(f"run {run_id}: {len(cases)} cases, {settings.threads} threads, {env.cpu_name()} -> {out}")
    rows: list[dict[str, object]] = []
    interrupted = False
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    with progress:
        task = progress.add_task("starting", total=len(cases))

        def on_start(case: Case) -> None:
            progress.update(task, description=f"{case.variant} {case.device} {case.height}x{case.width} b{case.batch} {case.pass_name}")

        def on_row(case: Case, row: dict[str, object]) -> None:
            rows.append(row)
            progress.advance(task)

        try:
            run_sweep(cases, settings, out, run_id, on_start=on_start, on_row=on_row)
        except KeyboardInterrupt:
            interrupted = True
    frame = pd.DataFrame(rows)
    if not frame.empty:
        stdout = Console()
        stdout.width = max(stdout.width, 110)  # keep the table readable when piped to a file
        stdout.print(summary_table(frame, title=f"run {run_id}"))
        print_failures(frame, console)
    console.print(f"{len(rows)} of {len(cases)} rows written to {out}")
    if rows and not args.no_plots:
        from bench.plots import plot_after_sweep  # drawing stays apart from measuring

        plot_after_sweep(out, console)
    if interrupted:
        console.print("[yellow]interrupted[/]: the rows above are saved")
        return 130
    return 0


def configure_list(parser: argparse.ArgumentParser) -> None:
    """Add the list command's options."""
    add_common(parser)
    parser.add_argument("--device", default="cpu", help="device to check support on (default: cpu)")


def run_list_command(args: argparse.Namespace) -> int:
    """Print every variant, its family and whether it can run here; return 0."""
    load_plugins(args.plugin)
    if args.device not in spec.DEVICES:
        raise CliError(f"unknown device {args.device!r} (known: {', '.join(spec.DEVICES)})")
    table = Table(title=f"variants on {args.device} ({env.device_name(args.device)})")
    for header in ("variant", "family", "runs here", "description"):
        table.add_column(header)
    probe = Case("", device=args.device)
    for variant in av.available():
        reason = env.device_unavailable(args.device) or variant.supports(probe.replace(variant=variant.name))
        table.add_row(variant.name, variant.family, "yes" if reason is None else f"no: {reason}", variant.description)
    Console().print(table)
    return 0
