"""False-alarm study: run scripts/ci_gate.sh N times against the committed baseline; count regressions.

Nothing changed in the code between runs, so every regression reported is a false alarm.
Run it alone on the machine's benchmark slot:

    flock /tmp/bench.lock python scripts/false_alarms.py --runs 10

Prints one line per run (ci_gate.sh's exit status, how many cases the CLI's default 15 %
tolerance would have flagged, and the largest slowdown among the compared cases with that
case's measured spread) and a final
`false alarms: K of N runs`. BENCH_CI_TOLERANCE / BENCH_CI_REPEATS pass through to ci_gate.sh.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402
from bench.analysis import gate  # noqa: E402
from bench.cli.gate import pick_baseline  # noqa: E402

BASELINES = ROOT / "results" / "baseline"  # one CSV per machine; the gate picks this machine's


def worst(verdicts) -> str:
    """Return 'variant HxW: +x% (spread y%)' for the largest slowdown among the compared cases."""
    compared = verdicts.dropna(subset=["change"])
    if compared.empty:
        return "-"
    row = compared.loc[compared["change"].idxmax()]
    return f"{row['variant']} {row['height']}x{row['width']}: {row['change']:+.0%} (spread {row['noise']:.0%})"


def run_once(index: int, work: Path) -> tuple[int, int, str]:
    """Run ci_gate.sh once; return its exit status, the regressions at the default 15 % tolerance, the worst slowdown."""
    env = {**os.environ, "PYTHON": sys.executable, "BENCH_CI_MODE": "files", "BENCH_CI_DIR": str(work / f"run{index}")}
    done = subprocess.run([str(ROOT / "scripts" / "ci_gate.sh")], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
        return done.returncode, -1, "failed"
    current = results.load(work / f"run{index}" / "current.csv")
    verdicts = gate.compare(results.load(pick_baseline(BASELINES, current)), current)  # the CLI's default tolerance
    return done.returncode, int((verdicts["verdict"] == "regression").sum()), worst(verdicts)


def main() -> int:
    """Run the study and print its table; return 0 (2 when a run could not be measured)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"scripts/ci_gate.sh against this machine's baseline in {BASELINES.relative_to(ROOT)}/, {args.runs} runs; "
          f"BENCH_CI_TOLERANCE={os.environ.get('BENCH_CI_TOLERANCE', '(default)')} "
          f"BENCH_CI_REPEATS={os.environ.get('BENCH_CI_REPEATS', '(default)')}")
    alarms = 0
    with tempfile.TemporaryDirectory(prefix="false_alarms_") as tmp:
        for index in range(1, args.runs + 1):
            status, regressions, largest = run_once(index, Path(tmp))
            if status not in (0, 1):
                print(f"run {index:2d}: ci_gate.sh failed with exit {status}")
                return 2
            alarms += status == 1
            print(f"run {index:2d}: ci_gate exit {status}; regressions at the default 15% tolerance: {regressions}; "
                  f"largest slowdown {largest}", flush=True)
    print(f"false alarms: {alarms} of {args.runs} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
