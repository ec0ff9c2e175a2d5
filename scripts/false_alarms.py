"""False-alarm study: run scripts/ci_gate.sh N times against the committed baseline; count regressions.

Nothing changed in the code between runs, so every regression reported is a false alarm.
Run it alone on the machine's benchmark slot:

    flock /tmp/bench.lock python scripts/false_alarms.py --runs 10

Prints one line per run (exit status, regressions, the largest slowdown seen and its
threshold) and a final `false alarms: K of N runs`. Extra gate flags go in BENCH_GATE_ARGS.
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

from bench import gate, results  # noqa: E402

BASELINE = ROOT / "results" / "baseline" / "ci.csv"


def gate_settings_from_env() -> gate.GateSettings:
    """Return the gate settings that BENCH_GATE_ARGS (as passed to ci_gate.sh) selects."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--tolerance", type=float, default=gate.GateSettings.tolerance)
    parser.add_argument("--reference", default=gate.GateSettings.reference)
    parser.add_argument("--absolute", action="store_true")
    args, _ = parser.parse_known_args(os.environ.get("BENCH_GATE_ARGS", "").split())
    return gate.GateSettings(args.tolerance, None if args.absolute else args.reference)


def worst(verdicts) -> str:
    """Return 'variant HxW: +x% (threshold y%)' for the largest slowdown among compared cases."""
    compared = verdicts.dropna(subset=["change"])
    if compared.empty:
        return "-"
    row = compared.loc[compared["change"].idxmax()]
    return f"{row['variant']} {row['height']}x{row['width']}: {row['change']:+.0%} (threshold {row['threshold']:.0%})"


def run_once(index: int, work: Path) -> tuple[int, int, str]:
    """Run ci_gate.sh once; return its exit status, the number of regressions and the worst slowdown."""
    env = {**os.environ, "PYTHON": sys.executable, "BENCH_CI_DIR": str(work / f"run{index}")}
    done = subprocess.run([str(ROOT / "scripts" / "ci_gate.sh")], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
        return done.returncode, -1, "failed"
    verdicts = gate.compare(results.load(BASELINE), results.load(work / f"run{index}" / "current.csv"),
                            gate_settings_from_env())
    return done.returncode, int((verdicts["verdict"] == "regression").sum()), worst(verdicts)


def main() -> int:
    """Run the study and print its table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"baseline {BASELINE.relative_to(ROOT)}; gate settings {gate_settings_from_env()}; "
          f"repeats per run {os.environ.get('BENCH_CI_REPEATS', '3 (default)')}")
    alarms = 0
    with tempfile.TemporaryDirectory(prefix="false_alarms_") as tmp:
        for index in range(1, args.runs + 1):
            status, regressions, largest = run_once(index, Path(tmp))
            alarms += status == 1
            print(f"run {index:2d}: exit {status}, regressions {regressions}, largest slowdown {largest}", flush=True)
    print(f"false alarms: {alarms} of {args.runs} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
