"""Measure the CPU kernel targets of issue 32 in one run and judge them (a benchmark script, not a test).

Two sweeps through the harness's own commands, each in interleaved rounds on this machine:
- op level: batch 1 and 8, 2 heads, 56x56, head_dim 32, k=7, float32, forward and forward_backward,
  for Im2Col, Slide, the fast exact local-zero-pad variants and Swin's window attention;
- model level: fast-swin-t (local-tiled in stages 1-2) against swin-t, batch 1, 224x224, forward
  and a training step.
Then, from the rows (per-round ratios; the interval is their min..max over rounds):
- forward: local-tiled at >= 50 % of the calibrated roof (the matmul calibration) at batch 8;
- forward_backward: the fastest exact local-zero-pad variant at least as fast as `window` at batch 1
  and 8, i.e. >= 20x Im2Col;
- model level: fast-swin-t within 10 % of swin-t (or faster), forward and training step.

    flock /tmp/bench.lock python scripts/kernel_targets.py --out results/reference/kernel-targets
    python scripts/kernel_targets.py --judge results/reference/kernel-targets   # judge the CSVs again
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import pandas as pd  # noqa: E402

from bench import results  # noqa: E402

EXACT = ["slide", "local-fused", "local-halo", "local-tiled"]  # exact local-zero-pad variants, the fastest ones
OP_SWEEP = ["--variants", ",".join(["im2col", *EXACT, "window"]), "--resolutions", "56", "--batch", "1,8", "--heads", "2",
            "--head-dim", "32", "--kernel-sizes", "7", "--passes", "forward,forward_backward", "--no-plots"]
MODEL_SWEEP = ["models", "--models", "swin-t,fast-swin-t", "--batch", "1", "--resolutions", "224", "--passes",
               "forward,forward_backward", "--no-plots"]
ROOF_TARGET, MODEL_TARGET = 0.5, 1.10


def per_round(rows: pd.DataFrame, key: str) -> pd.DataFrame:
    """Return median_ms per round (rows) and `key` value (columns) of the ok rows (one row each: pivot refuses more)."""
    ok = rows[rows["status"] == "ok"]
    return ok.pivot(index="round", columns=key, values="median_ms")


def interval(ratios: pd.Series) -> str:
    """Return a ratio's median over rounds and its min..max."""
    return f"{ratios.median():.2f}x [{ratios.min():.2f}-{ratios.max():.2f}]"


def verdict(values: pd.Series, target: float, at_least: bool = True, inconclusive: str = "inconclusive") -> str:
    """Return 'met' when every round's value is on the target's side (>= it, or <= it when not at_least), 'not met'
    when none is, else `inconclusive`; rounds without a value do not count, and no value at all is inconclusive."""
    values = values.dropna()
    good = values >= target if at_least else values <= target
    return inconclusive if good.empty else "met" if good.all() else "not met" if not good.any() else inconclusive


def judge_ops(rows: pd.DataFrame) -> list[str]:
    """Return the op-level table lines and verdicts."""
    lines = []
    for (batch, pass_name), group in rows.groupby(["batch", "pass"]):
        times = per_round(group, "variant")
        medians = times.median().sort_values()
        lines.append(f"\nbatch {batch}, {pass_name} (median ms over {len(times)} rounds; x = Im2Col ms / variant ms):")
        for variant, ms in medians.items():
            speedup = times["im2col"] / times[variant] if "im2col" in times else pd.Series(dtype=float)
            lines.append(f"  {variant:12s} {ms:9.3f} ms  {interval(speedup) if len(speedup.dropna()) else '-'}")
        exact = [v for v in EXACT if v in medians.index]
        if pass_name == "forward_backward" and exact and "window" in medians.index:
            best = min(exact, key=lambda v: medians[v])
            ratio = times["window"] / times[best]  # > 1: the exact variant is faster
            lines.append(f"  target: fastest exact ({best}) at least as fast as window: window ms / {best} ms = "
                         f"{interval(ratio)}: {verdict(ratio, 1, inconclusive='inconclusive (the rounds straddle 1)')}")
        if pass_name == "forward" and batch == 8:
            tiled = group[(group["variant"] == "local-tiled") & (group["status"] == "ok")]
            if len(tiled):
                fraction = tiled["roofline_fraction"]
                judged = verdict(fraction, ROOF_TARGET, inconclusive="inconclusive (the rounds straddle the target)")
                peak = tiled["peak_gflop_per_s"].iloc[0]
                lines.append(f"  target: local-tiled at >= {ROOF_TARGET:.0%} of the calibrated roof ({peak:.0f} GFLOP/s, "
                             f"torch's matmul): {fraction.median():.0%} [{fraction.min():.0%}-{fraction.max():.0%}], "
                             f"{tiled['gflop_per_s'].median():.0f} GFLOP/s: {judged}")
    return lines


def judge_models(rows: pd.DataFrame) -> list[str]:
    """Return the model-level lines and verdicts: fast-swin-t ms / swin-t ms per round."""
    lines = []
    for pass_name, group in rows.groupby("pass"):
        times = per_round(group, "variant")  # a model row names its config in `variant`
        if not {"swin-t", "fast-swin-t"} <= set(times.columns):
            lines.append(f"\nmodels, {pass_name}: no ok rows of both configs ({', '.join(group['status'].unique())})")
            continue
        ratio = times["fast-swin-t"] / times["swin-t"]
        lines.append(f"\nmodels, batch 1, 224x224, {pass_name}: swin-t {times['swin-t'].median():.1f} ms, fast-swin-t "
                     f"{times['fast-swin-t'].median():.1f} ms; fast-swin-t / swin-t = {interval(ratio)} "
                     f"(target <= {MODEL_TARGET:.2f}): {verdict(ratio, MODEL_TARGET, at_least=False)}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for ops.csv and models.csv (default: results/kernel-targets)")
    parser.add_argument("--judge", type=Path, metavar="FOLDER", help="judge the ops.csv and models.csv there; measure nothing")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of each sweep (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    folder = args.judge or args.out or ROOT / "results" / "kernel-targets"
    ops, models = folder / "ops.csv", folder / "models.csv"
    if not args.judge:
        folder.mkdir(parents=True, exist_ok=True)
        common = ["--threads", str(args.threads)]
        for command in ([*OP_SWEEP, "--repeats", str(args.rounds), "--out", str(ops)],
                        [*MODEL_SWEEP, "--rounds", str(args.rounds), "--out", str(models)]):
            done = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), *command, *common], cwd=ROOT)
            if done.returncode:
                print(f"kernel_targets: run_bench.py {' '.join(command[:2])} ... exited {done.returncode}", file=sys.stderr)
                return done.returncode
    lines = judge_ops(results.load(ops)) + judge_models(results.load(models))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
