"""How far the gradient check is from each verdict, and what it costs per case.

    python scripts/gradient_margins.py [--size 28] [--kernel 7] [--seeds 3] [--dtypes float32,bfloat16,float16]

For every registered variant that has a backward here, and for the planted backward bugs of
tests/test_gradients.py, runs the harness's own gradient check (bench.measure.gradients.check_gradients
on the first call of the timed closure, as a forward_backward row gets it) at batch 1, heads 2,
head_dim 32 and prints per dtype: the row's grad_max_abs_err and grad_tolerance, the score
max(error / bound) over dq, dk, dv and both bounds (above 1 is a `mismatch`; the largest over
the seeds for a correct variant, the smallest for a planted bug), and the seconds the check
took beside the seconds of one timed forward_backward call. With --models, the same for the
training step of each model config (bench.models.gradients.gradient_check) at --resolution.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import attention_variants as av  # noqa: E402
from attention_variants.case import Case  # noqa: E402
from bench.measure.callables import first_call  # noqa: E402
from bench.measure.gradients import check_gradients, differentiable_inputs  # noqa: E402
from test_gradients import BUGS, planted  # noqa: E402


def measure(variant: av.Variant, case: Case, seed: int) -> tuple[float, float, float, float, float]:
    """Return (grad_max_abs_err, grad_tolerance, score, check seconds, one timed call's seconds) of one case."""
    leaves = differentiable_inputs(case, seed + 1)
    prepared = variant.build(case, *leaves)
    called = first_call(prepared, case, torch.get_num_threads(), seed)
    started = time.perf_counter()
    verdict = check_gradients(variant, case, seed, prepared, leaves, called)
    check_s = time.perf_counter() - started
    started = time.perf_counter()
    called.fn()
    call_s = time.perf_counter() - started
    score = max(verdict.max_abs_err / verdict.tolerance, verdict.mean_abs_err / verdict.mean_tolerance)
    return verdict.max_abs_err, verdict.tolerance, score, check_s, call_s


def model_rows(resolution: int, dtype: str) -> None:
    """Print each model config's training-step gradient check: the worst tensor's error and bound, and its seconds."""
    from bench.models.configs import CONFIGS
    from bench.models.gradients import gradient_check
    from bench.models.measure import build

    print("| config | dtype | grad_max_abs_err | grad_tolerance | check s |")
    print("|:--|:--|--:|--:|--:|")
    for config in CONFIGS:
        model, twin = build(config, resolution, 0)
        model = model.to(dtype=getattr(torch, dtype)).eval()
        image = torch.randn(1, 3, resolution, resolution, generator=torch.Generator().manual_seed(1)).to(next(model.parameters()).dtype)
        started = time.perf_counter()
        try:
            checked = gradient_check(model, twin, image, torch.tensor([3]), dtype)
        except Exception as err:  # e.g. a stage the config's variant cannot run here
            print(f"| {config} | {dtype} | {type(err).__name__}: {str(err).splitlines()[0][:80]} | | |")
            continue
        print(f"| {config} | {dtype} | {checked['grad_max_abs_err']:.3g} | {checked['grad_tolerance']:.3g} | "
              f"{time.perf_counter() - started:.1f} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--kernel", type=int, default=7)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--dtypes", default="float32,bfloat16,float16")
    parser.add_argument("--models", action="store_true", help="the model configs' training-step check instead")
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    if args.models:
        for dtype in args.dtypes.split(","):
            model_rows(args.resolution, dtype)
        return 0
    variants = [(v, False) for v in av.available()] + [(planted(bug, name), True) for bug, name in BUGS]
    print("| variant | dtype | grad_max_abs_err | grad_tolerance | score (worst seed) | check s | one call s |")
    print("|:--|:--|--:|--:|--:|--:|--:|")
    for variant, is_bug in variants:
        for dtype in args.dtypes.split(","):
            case = Case(variant=variant.name, dtype=dtype, batch=1, heads=2, height=args.size, width=args.size, head_dim=32,
                        kernel_size=args.kernel, pass_name="forward_backward")
            if variant.supports(case):
                continue
            runs = [measure(variant, case, seed) for seed in range(args.seeds)]
            error, tolerance, _, check_s, call_s = runs[0]
            score = (min if is_bug else max)(run[2] for run in runs)
            print(f"| {variant.name} | {dtype} | {error:.3g} | {tolerance:.3g} | {score:.2f} | "
                  f"{max(run[3] for run in runs):.2f} | {max(run[4] for run in runs):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
