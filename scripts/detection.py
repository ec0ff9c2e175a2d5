"""Detection study: which slowdown of one variant does the CI gate catch, every time?

For each delay factor and trial, scripts/ci_gate.sh's sweeps run with the test plugin
tests.plugins.slowed on variants im2col and `slowed` (Slide attention made FACTOR times
slower per call). The `slowed` rows are then labelled `slide`, i.e. the current run says
"slide became FACTOR times slower", and gated against the committed baseline with the
tolerance that ci_gate.sh uses. Run it alone on the machine's benchmark slot:

    flock /tmp/bench.lock python scripts/detection.py --factors 1.3,1.5,2,3 --trials 3
"""

from __future__ import annotations

import argparse
import os
import re
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
CI_GATE = ROOT / "scripts" / "ci_gate.sh"


def ci_tolerance() -> float:
    """Return the tolerance ci_gate.sh uses (BENCH_CI_TOLERANCE, else the script's default)."""
    default = re.search(r"BENCH_CI_TOLERANCE:-([0-9.]+)", CI_GATE.read_text())
    return float(os.environ.get("BENCH_CI_TOLERANCE", default.group(1) if default else "0.15"))


def measure(factor: str, work: Path) -> Path:
    """Run ci_gate.sh's sweeps with `slowed` at `factor`; return the CSV with `slowed` labelled `slide`."""
    env = {**os.environ, "PYTHON": sys.executable, "BENCH_CI_MODE": "files", "BENCH_CI_DIR": str(work),
           "BENCH_SLOWED_FACTOR": factor,
           "BENCH_SWEEP_ARGS": "--plugin tests.plugins.slowed --variants im2col,slowed"}
    done = subprocess.run([str(CI_GATE)], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"ci_gate.sh failed: {done.stderr.strip().splitlines()[-1:]}")
    frame = results.load(work / "current.csv")
    frame["variant"] = frame["variant"].replace({"slowed": "slide"})
    relabelled = work / "relabelled.csv"
    relabelled.unlink(missing_ok=True)
    results.append_rows(relabelled, frame.astype(object).where(frame.notna(), None).to_dict("records"))
    return relabelled


def trial(factor: str, work: Path, settings: gate.GateSettings) -> tuple[bool, str]:
    """Return whether the gate failed on slide, and 'HxW change verdict' for each slide case."""
    current = results.load(measure(factor, work))
    verdicts = gate.compare(results.load(pick_baseline(BASELINES, current)), current, settings)
    slide = verdicts[verdicts["variant"] == "slide"]
    cells = [f"{r['height']}x{r['width']} {r['change']:+.0%} {r['verdict']}" for _, r in slide.iterrows()]
    return bool((slide["verdict"] == "regression").any()), "; ".join(cells)


def main() -> int:
    """Run every factor's trials and print one line per trial and one summary line per factor; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", default="1.3,1.5,2,3")
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    settings = gate.GateSettings(tolerance=ci_tolerance())
    print(f"gate: tolerance {settings.tolerance:.0%}, reference {settings.reference}; baselines {BASELINES.relative_to(ROOT)}/")
    summary = []
    with tempfile.TemporaryDirectory(prefix="detection_") as tmp:
        for factor in args.factors.split(","):
            caught = 0
            for index in range(1, args.trials + 1):
                flagged, cells = trial(factor, Path(tmp) / f"x{factor}-{index}", settings)
                caught += flagged
                print(f"x{factor} trial {index}: {'CAUGHT' if flagged else 'missed'} ({cells})", flush=True)
            summary.append(f"slowdown x{factor}: caught in {caught} of {args.trials} trials")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
