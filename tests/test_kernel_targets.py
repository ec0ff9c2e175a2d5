"""scripts/kernel_targets.py's verdicts: from per-round ratios, `met` only when every round is on the right side."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from bench import results

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("kernel_targets", REPO / "scripts" / "kernel_targets.py")
kernel_targets = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kernel_targets)


def _forward_rows(fractions: list[float]) -> pd.DataFrame:
    """Batch-8 forward rows of local-tiled and Im2Col, one round per roof fraction."""
    rows = []
    for round_, fraction in enumerate(fractions):
        rows.append(dict(batch=8, variant="local-tiled", median_ms=1.0, roofline_fraction=fraction, peak_gflop_per_s=100.0,
                         gflop_per_s=100 * fraction, status="ok", round=round_, **{"pass": "forward"}))
        rows.append(dict(batch=8, variant="im2col", median_ms=50.0, roofline_fraction=0.01, peak_gflop_per_s=100.0,
                         gflop_per_s=1.0, status="ok", round=round_, **{"pass": "forward"}))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("fractions,verdict", [([0.55, 0.6, 0.7], "met"), ([0.3, 0.4, 0.45], "not met"),
                                               ([0.46, 0.57, 0.67], "inconclusive (the rounds straddle the target)")])
def test_the_roof_target_is_met_only_when_every_round_reaches_it(fractions, verdict):
    line = next(line for line in kernel_targets.judge_ops(_forward_rows(fractions)) if "calibrated roof" in line)
    assert line.endswith(f": {verdict}"), line


def test_the_committed_avx512_run_is_judged_as_docs_performance_says():
    folder = REPO / "results" / "reference" / "kernel-targets-avx512-quiet"
    lines = kernel_targets.judge_ops(results.load(folder / "ops.csv")) + kernel_targets.judge_models(results.load(folder / "models.csv"))
    verdicts = [line.rsplit(": ", 1)[1] for line in lines if "target" in line]
    assert verdicts == ["inconclusive (the rounds straddle 1)", "inconclusive (the rounds straddle the target)", "met", "met", "met"]
    assert "57% [46%-67%]" in next(line for line in lines if "calibrated roof" in line)
