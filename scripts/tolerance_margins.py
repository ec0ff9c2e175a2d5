"""How far the correctness rule is from each verdict: the margins docs/measuring.md "Correctness" quotes.

    python scripts/tolerance_margins.py [--seeds 3] [--dtypes bfloat16,float16,float32] [--planted]

For every registered variant and dtype, over a grid of shapes (kernel 3-11, head_dim 8-64,
sizes 7-56) and seeds, prints the largest ratio of the variant's max and mean error to the
plain formulation's (bench.measure.correctness.oracle_check, the harness's own check), and the
score max(max error / tolerance, mean error / mean tolerance): above 1 is a `mismatch`. A
correct variant's largest score must stay below 1; with --planted, the planted bugs of
tests/test_tolerance.py are listed too, and their smallest score must be above 1. Errors only,
no timing: a few minutes on one core.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import attention_variants as av  # noqa: E402
from attention_variants.case import Case  # noqa: E402
from bench.measure.correctness import MAX_FACTOR, MEAN_FACTOR, oracle_check  # noqa: E402

# (batch, heads, height, width, head_dim, kernel)
SHAPES = [(1, 2, 7, 7, 8, 3), (1, 2, 7, 7, 16, 7), (2, 2, 14, 14, 32, 7), (1, 1, 28, 28, 64, 11), (1, 1, 56, 56, 32, 7),
          (1, 2, 9, 13, 8, 3), (1, 2, 15, 15, 16, 5), (1, 1, 27, 27, 64, 9), (1, 1, 33, 33, 32, 11), (1, 2, 28, 28, 8, 5),
          (1, 1, 56, 56, 64, 3), (2, 1, 21, 21, 64, 7), (1, 1, 14, 14, 64, 7)]


def ratios(variant: av.Variant, dtype: str, seeds: int) -> list[tuple[float, float, float]]:
    """Return (max / plain max error, mean / plain mean error, score) per supported shape and seed."""
    found = []
    for batch, heads, height, width, head_dim, kernel in SHAPES:
        case = Case(variant=variant.name, dtype=dtype, batch=batch, heads=heads, height=height, width=width,
                    head_dim=head_dim, kernel_size=kernel)
        if variant.supports(case) is not None:
            continue
        for seed in range(seeds):
            check = oracle_check(variant, case, seed)
            score = max(check.error / check.tolerance, check.mean_error / check.mean_tolerance)
            if check.plain_error:  # float64: the plain formulation is the oracle (error 0), only the score says
                found.append((check.error / check.plain_error, check.mean_error / check.plain_mean_error, score))
            else:
                found.append((float("nan"), float("nan"), score))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--dtypes", default="bfloat16,float16,float32")
    parser.add_argument("--planted", action="store_true", help="also the planted bugs of tests/test_tolerance.py")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = {variant.name: variant for variant in av.available()}
    if args.planted:
        from test_tolerance import BUGS, planted
        variants.update({f"planted {bug}": planted(bug) for bug in BUGS})
    print(f"rule: max <= {MAX_FACTOR:g} x plain, mean <= {MEAN_FACTOR:g} x plain (+ floor); ranges over cases")
    for dtype in args.dtypes.split(","):
        for name, variant in variants.items():
            found = ratios(variant, dtype, args.seeds)
            if found:
                maxes, means, scores = zip(*found)
                print(f"{dtype:9s} {name:34s} n={len(found):3d}  max/plain {min(maxes):5.2f}-{max(maxes):6.2f}  "
                      f"mean/plain {min(means):5.2f}-{max(means):6.2f}  score {min(scores):6.2f}-{max(scores):7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
