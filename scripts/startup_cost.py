"""What starting the harness costs, as ratios to one `import torch` measured in the same run.

    flock /tmp/bench.lock python scripts/startup_cost.py [--repeats 3]

Times, end to end as a user runs them (fresh processes, wall clock, the median of --repeats):
`python -c "import torch"`; one trivial case (im2col, 14x14, k3, a 0.01-0.05 s timing budget,
no figures); twelve trivial cases (twelve resolutions). Prints each time and its ratio to the
torch import, and the cost of each further trivial case as (twelve - one) / 11. The roofline's
peaks come from this machine's cache after the first run (`--recalibrate` measures them again).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRIVIAL = ["--variants", "im2col", "--kernel-sizes", "3", "--min-run-s", "0.01", "--max-run-s", "0.05", "--no-plots"]


def wall_s(argv: list[str], repeats: int) -> float:
    """Return the median wall-clock seconds of running argv (in the repository root) `repeats` times."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sweep = [sys.executable, "run_bench.py", *TRIVIAL]
        one_case = [*sweep, "--resolutions", "14", "--out", f"{folder}/one.csv"]
        twelve = [*sweep, "--resolutions", ",".join(str(side) for side in range(14, 26)), "--out", f"{folder}/twelve.csv"]
        subprocess.run(one_case, cwd=REPO, check=True, capture_output=True)  # fills the peaks' cache, warms the disk cache
        torch_s = wall_s([sys.executable, "-c", "import torch"], args.repeats)
        one_s = wall_s(one_case, args.repeats)
        twelve_s = wall_s(twelve, args.repeats)
    further_s = (twelve_s - one_s) / 11
    print("| what | seconds | x import torch |")
    print("|:--|--:|--:|")
    for label, seconds in (("import torch", torch_s), ("one trivial case, end to end", one_s),
                           ("twelve trivial cases, end to end", twelve_s), ("each further trivial case", further_s)):
        print(f"| {label} | {seconds:.2f} | {seconds / torch_s:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
