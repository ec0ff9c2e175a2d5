"""Harness overhead: what the timer reports for an empty callable and for a trivially small case.

Anything measured at or near these floors is measuring the harness (Python call, closure,
timer loop), not the attention. Run: `python -m bench.measure.overhead [--threads N]`.
"""

from __future__ import annotations

import argparse

import torch

import attention_variants as av
from attention_variants.case import Case
from bench.measure import timing
from bench.measure.callables import timed_callable
from bench.measure.inputs import make_inputs
from bench.measure.settings import Settings

TINY = Case(variant="im2col", batch=1, height=3, width=3, heads=1, head_dim=1, kernel_size=3)


def empty_callable_us(settings: Settings) -> timing.Timing:
    """Return the timing of a callable that does nothing (the timer's own floor)."""
    return timing.measure(lambda: None, "cpu", settings.threads, settings.warmup_s, settings.min_run_s, settings.max_run_s)


def tiny_case_timings(settings: Settings, names: list[str]) -> dict[str, timing.Timing]:
    """Return the timing of each variant on a 3x3 image, one head of width 1, k=3 (device cpu)."""
    found = {}
    for name in names:
        case = TINY.replace(variant=name)
        if av.get(name).supports(case):
            continue
        try:
            prepared = av.get(name).build(case, *make_inputs(case, settings.seed))
        except Exception:  # e.g. a library with no kernel for so small a case: nothing to time
            continue
        fn = timed_callable(prepared, case, settings.threads).fn
        found[name] = timing.measure(fn, "cpu", settings.threads, settings.warmup_s, settings.min_run_s, settings.max_run_s)
    return found


def main() -> int:
    """Print the empty-callable floor and each variant's tiny-case time, in microseconds."""
    parser = argparse.ArgumentParser(description="harness overhead: empty callable and a trivially small case")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings(threads=args.threads, min_run_s=0.2, max_run_s=1.0)
    empty = empty_callable_us(settings)
    print(f"threads {args.threads}")
    print(f"{'empty callable':<22} median {empty.median_ms * 1e3:9.3f} us  IQR {empty.iqr_ms * 1e3:.3f} us")
    for name, measured in tiny_case_timings(settings, av.names()).items():
        print(f"{name + ' (3x3, k3)':<22} median {measured.median_ms * 1e3:9.3f} us  IQR {measured.iqr_ms * 1e3:.3f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
