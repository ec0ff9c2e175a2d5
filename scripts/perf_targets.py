"""Print the fast exact variants' performance targets, measured in one run (a benchmark script, not a test).

Target case: batch 8, 2 heads, 56x56, head_dim 32, k=7, float32, forward, CPU, 2 threads.
Every registered `local-zero-pad` variant is measured through the harness (bench.execution.sweep),
eagerly and (those named by --compiled) under torch.compile too; the script prints each one's speed-up
over Im2Col and its distance from the calibrated roofline and compute roof, then the two targets:
best exact variant >= 20x faster than Im2Col, and within 4x of the compute roofline.

    flock /tmp/bench.lock python scripts/perf_targets.py --compiled local-fused,local-halo,local-views --out results/perf_targets.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import pandas as pd  # noqa: E402
import torch  # noqa: E402

import attention_variants as av  # noqa: E402
from attention_variants.case import Case  # noqa: E402
from bench.execution.rows import make_row  # noqa: E402
from bench.execution.sweep import run_case  # noqa: E402
from bench.measure import machine  # noqa: E402
from bench.measure.settings import Settings  # noqa: E402
from bench.results import append_rows  # noqa: E402
from bench.results.samples import append_samples, take_samples  # noqa: E402

TARGET = dict(device="cpu", dtype="float32", batch=8, height=56, width=56, heads=2, head_dim=32, kernel_size=7)
SPEEDUP_TARGET = 20.0
ROOFLINE_TARGET = 4.0  # at most this many times slower than the compute roofline


def target_cases(compiled: list[str]) -> list[Case]:
    """Return the target case for every local-zero-pad variant, plus compiled copies of `compiled`."""
    names = [v.name for v in av.available() if v.family == "local-zero-pad"]
    unknown = sorted(set(compiled) - set(names))
    if unknown:
        raise ValueError(f"--compiled: not a local-zero-pad variant: {', '.join(unknown)} (known: {', '.join(names)})")
    return [Case(variant=name, **TARGET) for name in names] + [Case(variant=name, runtime="inductor", **TARGET) for name in compiled]


def ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """Return each row's speed-up over eager Im2Col and its distance from the roofline and the compute roof."""
    baseline = rows.loc[(rows.variant == "im2col") & (rows.runtime == "eager"), "median_ms"].iloc[0]
    table = rows[["variant", "runtime", "status", "median_ms", "compile_ms", "gflop_per_s", "roofline_fraction", "bound"]].copy()
    table["speedup_vs_im2col"] = baseline / table["median_ms"]
    table["x_from_roofline"] = 1 / table["roofline_fraction"]  # min(compute roof, intensity x bandwidth)
    table["x_from_compute_roof"] = rows["peak_gflop_per_s"] / rows["gflop_per_s"]  # what the target names
    return table.sort_values("median_ms")


def verdict(table: pd.DataFrame) -> list[str]:
    """Return one line per target: the best exact variant's figure and whether it meets it."""
    exact = table[(table.status == "ok") & (table.variant != "im2col")]
    best = exact.iloc[0]
    label = f"{best.variant}{'' if best.runtime == 'eager' else f' ({best.runtime})'}"
    return [
        f"best exact local-zero-pad variant: {label}, {best.median_ms:.2f} ms",
        f"speed-up vs im2col: {best.speedup_vs_im2col:.1f}x (target >= {SPEEDUP_TARGET:g}x): "
        + ("met" if best.speedup_vs_im2col >= SPEEDUP_TARGET else "NOT met"),
        f"distance from the compute roofline (peak GFLOP/s): {best.x_from_compute_roof:.1f}x (target <= {ROOFLINE_TARGET:g}x): "
        + ("met" if best.x_from_compute_roof <= ROOFLINE_TARGET else "NOT met"),
        f"distance from the roofline (the lower of the compute and memory roofs; here {best.bound}-bound): "
        f"{best.x_from_roofline:.1f}x",
    ]


def main() -> int:
    """Measure the target case, print the ratio table and the verdicts; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compiled", default="", metavar="A,B,...", help="also measure these variants under torch.compile")
    parser.add_argument("--out", type=Path, help="also append the rows to this results CSV")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings(threads=args.threads, min_run_s=0.5, max_run_s=2.0)
    fingerprint, run_id = machine.fingerprint(args.threads), time.strftime("perf-%Y%m%d-%H%M%S")
    try:
        cases = target_cases([name for name in args.compiled.split(",") if name])
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    rows, samples = [], []
    for case in cases:
        print(f"measuring {case.variant}{'' if case.runtime == 'eager' else ' ' + case.runtime} ...", file=sys.stderr, flush=True)
        row = make_row(case, run_case(case, settings), run_id, fingerprint, {})
        samples += take_samples(row)
        rows.append(row)
    if args.out:
        append_rows(args.out, rows)
        append_samples(args.out, samples)
    frame = pd.DataFrame(rows)
    peaks = frame.dropna(subset=["peak_gflop_per_s"]).iloc[0]
    print(f"calibrated peaks: {peaks.peak_gflop_per_s:.1f} GFLOP/s (matmul), {peaks.peak_gb_per_s:.1f} GB/s (copy); "
          f"{args.threads} threads")
    table = ratios(frame)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print("\n".join(verdict(table)))
    failed = frame[frame.status != "ok"]
    for _, row in failed.iterrows():
        print(f"not ok: {row.variant} runtime={row.runtime}: {row.status}: {row.reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
