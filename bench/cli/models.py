"""`models`: whole Swin-T-shaped backbones (bench/models), timed in rounds, checked, and the paper's claims judged.

Each case (config x device x dtype x batch x resolution x pass) runs in a worker, as the
sweep's cases do; every round visits the cases in a seeded random order, so a ratio of two
configs is taken within each round, and the rounds give its interval (bench.analysis.models).
"""

from __future__ import annotations

import argparse
import math
import random
import tomllib
from dataclasses import asdict
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from attention_variants.case import DTYPES
from bench.analysis import models as claims
from bench.axes import DEVICES, MAX_SIZE, PASSES, RUNTIMES, ascii_integer
from bench.cli.common import MAX_SEED, CliError, add_no_plots_option, integer, new_run_id
from bench.cli.console import wide_console
from bench.execution import allocator as allocators
from bench.execution.early import default_threads
from bench.execution.isolation import Isolation
from bench.execution.pool import WorkerPool
from bench.execution.rows import make_row
from bench.execution.spec import MODEL_PRESETS, PRESET_DIR
from bench.measure import machine
from bench.measure.settings import Settings
from bench.models.backbone import check_resolution
from bench.models.configs import NAMES
from bench.models.measure import ModelCase
from bench.results import append_rows, load, unwritable
from bench.results.samples import append_samples, take_samples

LIST_FLAGS = {"--models": "models", "--batch": "batch", "--resolutions": "resolutions", "--dtypes": "dtypes",
              "--devices": "devices", "--passes": "passes", "--runtimes": "runtimes"}
OPTIONAL = {"runtimes": ["eager"]}  # a preset may leave these out
NUMBER_KEYS = ("rounds", "warmup_s", "min_run_s", "max_run_s")


def configure(parser: argparse.ArgumentParser, preset: str = "models", draws: bool = False) -> None:
    """Add the models command's options to parser (the paper command's too, with its own preset and figure)."""
    parser.add_argument("--preset", default=preset, help=f"`{preset}` (bench/presets/{preset}.toml) or a .toml file of the same keys")
    for flag, key in LIST_FLAGS.items():
        parser.add_argument(flag, dest=key, metavar="A,B,...", help=f"override the preset's {key}")
    add_no_plots_option(parser, draws=draws)
    parser.add_argument("--rounds", type=integer(), help="times each case is measured, in shuffled rounds (preset's rounds)")
    parser.add_argument("--min-run-s", type=float, help="least measuring time per case (preset's min_run_s)")
    parser.add_argument("--max-run-s", type=float, help="most measuring time per case (preset's max_run_s)")
    parser.add_argument("--threads", type=integer(), default=default_threads(), help="intra-op threads (default: %(default)s)")
    parser.add_argument("--seed", type=integer(0, MAX_SEED), default=0, help="seed of the weights, the images and the order of cases")
    parser.add_argument("--out", type=Path, help="results CSV to append to (default: results/models-<run_id>.csv)")
    parser.add_argument("--case-timeout", type=float, default=600.0, metavar="SECONDS", help="per case (default: %(default)g)")
    parser.add_argument("--allocator", default=allocators.DEFAULT, choices=list(allocators.ALLOCATORS),
                        help="C allocator of the workers (default: %(default)s)")


def plan(args: argparse.Namespace) -> tuple[list[ModelCase], dict[str, object]]:
    """Return the cases and the numeric settings of the preset and the flags (CliError on a bad value)."""
    path = PRESET_DIR / f"{args.preset}.toml" if args.preset in MODEL_PRESETS else Path(args.preset)
    try:
        preset = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise CliError(f"cannot read models preset {args.preset}: {str(err).splitlines()[0]}") from None
    unknown = sorted(set(preset) - set(LIST_FLAGS.values()) - set(NUMBER_KEYS))
    if unknown:
        raise CliError(f"models preset {args.preset}: unknown key(s) {', '.join(unknown)}")
    axes = {key: getattr(args, key).split(",") if getattr(args, key) else preset.get(key, OPTIONAL.get(key, []))
            for key in LIST_FLAGS.values()}
    numbers = {key: preset.get(key) for key in NUMBER_KEYS}
    numbers.update({key: getattr(args, key) for key in NUMBER_KEYS if getattr(args, key, None) is not None})
    _validate(axes, numbers)
    cases = [ModelCase(str(m), str(d), str(t), int(b), int(r), str(p), str(u)) for m in axes["models"] for d in axes["devices"]
             for t in axes["dtypes"] for b in axes["batch"] for r in axes["resolutions"] for p in axes["passes"]
             for u in axes["runtimes"]]
    return cases, numbers


def _validate(axes: dict[str, list], numbers: dict[str, object]) -> None:
    allowed = {"models": NAMES, "devices": DEVICES, "passes": PASSES, "dtypes": tuple(DTYPES), "runtimes": RUNTIMES}
    for key, values in axes.items():
        if not values:
            raise CliError(f"no {key} to run (give --{key} or set it in the preset)")
        for value in values:
            if key in allowed and str(value) not in allowed[key]:
                raise CliError(f"unknown {key[:-1] if key.endswith('s') else key} {str(value)!r} (known: {', '.join(allowed[key])})")
            number = value if isinstance(value, int) and not isinstance(value, bool) else ascii_integer(str(value))
            if key in ("batch", "resolutions") and not (number is not None and 0 < number <= MAX_SIZE):
                raise CliError(f"bad {key} value {str(value)!r}: expected a positive integer in ASCII digits")
            if key == "resolutions":
                try:
                    check_resolution(int(value))
                except ValueError as err:
                    raise CliError(f"bad {err}") from None
    for key, value in numbers.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
            raise CliError(f"bad {key} {value!r}: expected a positive number")
    if not float(numbers["rounds"]).is_integer():
        raise CliError(f"bad rounds {numbers['rounds']!r}: expected an integer")


def run(args: argparse.Namespace) -> int:
    """Measure every case of the plan for the rounds asked; print the table and the claims' verdicts; return 0."""
    measure(args)
    return 0


def measure(args: argparse.Namespace) -> tuple[object, Path]:
    """Measure the plan's cases in shuffled rounds, printing each row; print the table and the verdicts.

    Return this run's rows and the CSV they were appended to."""
    cases, numbers = plan(args)
    run_id = new_run_id()
    out = args.out or Path("results") / f"models-{run_id}.csv"
    problem = unwritable(out)
    if problem:  # before anything is measured
        raise CliError(f"cannot write the results: {problem}")
    settings = Settings(args.threads, numbers["warmup_s"], numbers["min_run_s"], numbers["max_run_s"], args.seed,
                        allocator=args.allocator)
    isolation = Isolation(case_timeout_s=args.case_timeout, cases_per_worker=1, allocator=args.allocator, threads=args.threads)
    console = wide_console(140)
    rounds = int(numbers["rounds"])
    console.print(escape(f"models: {len(cases)} cases x {rounds} rounds -> {out}"))
    fingerprint = {**machine.fingerprint(args.threads), "allocator": args.allocator}
    with WorkerPool(isolation) as pool:
        for round_number in range(1, rounds + 1):
            for index, case in enumerate(random.Random(f"models/{args.seed}/{round_number}").sample(cases, len(cases)), 1):
                row = make_row(case, pool.measure(asdict(case), asdict(settings)), run_id, fingerprint, {}, round_number)
                samples = take_samples(row)
                append_rows(out, [row])
                append_samples(out, samples)
                console.print(escape(f"  round {round_number}/{rounds} [{index}/{len(cases)}] {case.config} {case.device} "
                                     f"{case.runtime} {case.dtype} b{case.batch} {case.resolution} {case.pass_name}: "
                                     f"{_outcome(row)}"))
    rows = load(out)
    rows = rows[(rows["run_id"] == run_id)]
    console.print(_table(rows))
    verdicts = claims.verdicts(rows)
    for line in claims.lines(verdicts) + claims.unjudged(verdicts, claims.PAPER_ARROWS if args.preset == "paper-figure" else ()):
        console.print(escape(line))
    console.print(f"rows: {escape(str(out))}")
    return rows, out


def _outcome(row: dict[str, object]) -> str:
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('reason')}"
    return f"{row['median_ms']:.1f} ms, {row['throughput_per_s']:.1f} images/s, max_abs_err {row['max_abs_err']:.2g}"


def _table(rows) -> Table:
    """Return the medians over rounds per case (bench.analysis.models.summary) as a rich table."""
    table = Table(title="models (median over rounds)")
    keys = ("config", "device", "runtime", "dtype", "batch", "pass")
    for header in (*keys, "ms", "images/s", "GFLOP/image", "params (M)", "max_abs_err", "ok rounds"):
        table.add_column(header, justify="left" if header in keys and header != "batch" else "right", no_wrap=header == "config")
    number = lambda value, fmt: "-" if value != value else fmt.format(value)  # noqa: E731  NaN: nothing measured
    for _, r in claims.summary(rows).iterrows():
        table.add_row(*(escape(str(r[k])) for k in keys), number(r["ms"], "{:.1f}"),
                      number(r["images_per_s"], "{:.1f}"), number(r["gflop_per_image"], "{:.2f}"), number(r["params_m"], "{:.2f}"),
                      number(r["max_abs_err"], "{:.2g}"), escape(f"{r['rounds_ok']} ({r['status']})"))
    return table
