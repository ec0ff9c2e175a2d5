"""False alarms and detection of the A/B gate, measured the way CI runs it (docs/gate.md has the figures).

    python scripts/ab_study.py --runs 10 --lock /tmp/bench.lock                                  # nothing changed
    python scripts/ab_study.py --runs 10 --lock /tmp/bench.lock --plant slide=1.2,slide-grouped=1.1

--lock FILE takes an exclusive flock on FILE for each run (not for the whole study), so other
benchmarks or test runs that take the same lock go between runs, never beside one.

Each run is `run_bench.py gate --base-rev HEAD` with the flags of scripts/ci_gate.sh, made from
a temporary worktree of HEAD. Without --plant that worktree is
HEAD itself, so every regression is a false alarm. With --plant, a commit on top of HEAD makes
each named variant FACTOR times slower: its registered build function is wrapped so that every
call busy-waits until FACTOR times the real call's duration has passed (a slowdown that moves
with the machine's load, as real code does). Per run the script prints the gate's exit status,
each planted variant's cases (change, interval, verdict from the times alone, final verdict
with the instruction counts), and the largest change among the untouched variants.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from bench.analysis.ab import DEFAULT_TOLERANCE  # noqa: E402
from bench.execution import revision  # noqa: E402

CI_FLAGS = ("--preset", "ci", "--threads", "1", "--resolutions", "14", "--max-run-s", "0.1", "--changed-only")  # scripts/ci_gate.sh's
STRETCH = '''

def _stretched(build, factor):
    """Planted by scripts/ab_study.py: every call of the variant lasts `factor` times as long."""
    import dataclasses
    import time

    def stretched_build(case, q, k, v):
        prepared = build(case, q, k, v)
        inner = prepared.fn

        def slowed(*inputs):
            start = time.perf_counter()
            out = inner(*inputs)
            deadline = start + (time.perf_counter() - start) * factor
            while time.perf_counter() < deadline:
                pass
            return out

        return dataclasses.replace(prepared, fn=slowed)

    return stretched_build
'''


def plant(tree: Path, factors: dict[str, float]) -> None:
    """Commit, in the worktree tree, a change that makes each variant of factors that much slower."""
    import attention_variants as av  # HEAD's registry (tree is HEAD) says which module and function build each variant

    for name, factor in factors.items():
        build = av.get(name).build
        path = tree / Path(*build.__module__.split("."))
        source = path.with_suffix(".py").read_text()
        call = f'register(Variant("{name}", '
        head, sep, tail = source.partition(call)
        if not sep or f"{build.__name__}," not in tail:
            raise SystemExit(f"cannot find the registration of {name} in {path}.py")
        tail = tail.replace(f"{build.__name__},", f"_stretched({build.__name__}, {factor}),", 1)
        path.with_suffix(".py").write_text(head + STRETCH.lstrip("\n") + "\n\n" + sep + tail
                                           if "_stretched" not in head else head + sep + tail)
    subprocess.run(["git", "-C", str(tree), "-c", "user.name=ab_study", "-c", "user.email=ab@study", "commit", "-qam",
                    "plant " + ", ".join(f"{n} x{f:g}" for n, f in factors.items())], check=True)


@contextlib.contextmanager
def held(lock: Path | None):
    """Hold an exclusive flock on lock (if given) for the duration."""
    if lock is None:
        yield
        return
    with open(lock, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def run_once(tree: Path, base: str, out: Path, args: argparse.Namespace) -> tuple[int, pd.DataFrame, float]:
    """Run the A/B gate from tree against base; return its exit status, its verdicts and the seconds it took."""
    # With nothing planted, --changed-only would measure nothing: every variant is measured instead, the
    # strictest test of false alarms (14 identical pairs per run where CI compares only changed variants).
    flags = CI_FLAGS if args.plant else tuple(flag for flag in CI_FLAGS if flag != "--changed-only")
    command = [sys.executable, "run_bench.py", "gate", "--base-rev", base, "--rounds", str(args.rounds), "--ab-dir", str(out),
               *flags, *(["--no-instructions"] if args.no_instructions else [])]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"the gate failed (exit {done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return done.returncode, pd.read_csv(out / "verdicts.csv"), time.perf_counter() - start


def describe(verdicts: pd.DataFrame, planted: dict[str, float], tolerance: float) -> str:
    """Return the planted variants' cases and the largest change among the others, in one line."""
    cells = []
    for _, row in verdicts[verdicts["variant"].isin(planted)].iterrows():
        by_time = "regression" if row["low"] > tolerance else "unchanged"
        cells.append(f"{row['variant']} {row['height']}x{row['width']} {row['change']:+.1%} [{row['low']:+.1%}, {row['high']:+.1%}]"
                     f" time:{by_time} final:{row['verdict']} instr:{row.get('instructions', float('nan')):+.1%}")
    others = verdicts[~verdicts["variant"].isin(planted)].dropna(subset=["change"])
    worst = others.loc[others["low"].idxmax()] if len(others) else None
    if worst is not None:
        cells.append(f"others: {int((others['verdict'] == 'regression').sum())} regression(s), highest lower bound "
                     f"{worst['variant']} {worst['height']}x{worst['width']} {worst['low']:+.1%} (change {worst['change']:+.1%})")
    return "; ".join(cells)


def main() -> int:
    """Run the study; print one line per run and a summary; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--plant", default="", help="variant=factor,... made slower in a commit on top of HEAD")
    parser.add_argument("--no-instructions", action="store_true")
    parser.add_argument("--lock", type=Path, help="flock this file during each run (e.g. /tmp/bench.lock)")
    args = parser.parse_args()
    planted = {name: float(factor) for name, factor in (item.split("=") for item in args.plant.split(",") if item)}
    head = revision.resolve(ROOT, "HEAD")
    print(f"A/B gate, {args.runs} runs of {args.rounds} rounds, {' '.join(CI_FLAGS)}; base {head.label()}; "
          f"planted: {', '.join(f'{n} x{f:g}' for n, f in planted.items()) or 'nothing (every regression is false)'}")
    alarms, caught = 0, {name: 0 for name in planted}
    with revision.checked_out(ROOT, head) as tree, tempfile.TemporaryDirectory(prefix="ab_study_") as work:
        if planted:
            plant(tree, planted)
        for index in range(1, args.runs + 1):
            with held(args.lock):
                status, verdicts, seconds = run_once(tree, head.commit, Path(work) / f"run{index}", args)
            regressed = set(verdicts.loc[verdicts["verdict"] == "regression", "variant"])
            alarms += bool(regressed - set(planted))
            for name in planted:
                caught[name] += name in regressed
            print(f"run {index:2d}: exit {status} in {seconds:.0f} s; {describe(verdicts, planted, DEFAULT_TOLERANCE)}", flush=True)
    print(f"false alarms (a regression of a variant nobody changed): {alarms} of {args.runs} runs")
    for name, count in caught.items():
        print(f"{name} x{planted[name]:g}: caught in {count} of {args.runs} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
