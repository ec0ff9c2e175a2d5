"""The verdict of a sweep: fastest exact variant per family, Slide vs Im2Col with its interval, the claim's line."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.analysis.verdict import CLAIM, claim_line, fastest_per_family, slide_vs_im2col, verdict_lines
from synthetic_results import grid_rows, row


def rounds_of(times: dict[str, list[float]], res: int = 14) -> pd.DataFrame:
    """Return rows of one case measured in len(times[...]) rounds, with the given medians per round."""
    return pd.DataFrame([row(variant, 1, res, median_ms=ms, iqr_ms=0.0, round=number)
                         for variant, values in times.items() for number, ms in enumerate(values, 1)])


def test_fastest_exact_variant_per_family_ignores_rows_that_failed_the_oracle():
    rows = pd.DataFrame(grid_rows(["im2col", "slide", "window"], [14], [1])
                        + [row("natten", 1, 14), row("my-plugin", 1, 14, status="mismatch", median_ms=0.001)])
    best = fastest_per_family(rows).set_index("family")
    assert best.loc["local-zero-pad", "variant"] == "slide" and best.loc["local-zero-pad", "runner_up"] == "im2col"
    assert best.loc["window", "variant"] == "window" and best.loc["neighborhood", "variant"] == "natten"
    assert "local-masked" not in best.index  # its only row is a mismatch: not exact


@pytest.mark.parametrize("im2col, slide, verdict", [
    ([10, 11, 10.5, 10.2], [5, 5.5, 5.2, 5.1], "holds"),  # slide about 2x faster in every round
    ([5, 5.5, 5.2, 5.1], [10, 11, 10.5, 10.2], "does not hold"),
    ([10, 9, 10, 9], [9, 10, 9.5, 9.6], "inconclusive"),  # the ratio crosses 1 between rounds
])
def test_slide_vs_im2col_over_rounds(im2col, slide, verdict):
    table = slide_vs_im2col(rounds_of({"im2col": im2col, "slide": slide}))
    assert list(table["verdict"]) == [verdict]
    ratios = [i / s for i, s in zip(im2col, slide)]
    assert table["speedup"].iloc[0] == pytest.approx(pd.Series(ratios).median())
    assert (table["low"].iloc[0], table["high"].iloc[0]) == pytest.approx((min(ratios), max(ratios)))  # 4 rounds: the range
    assert "4 rounds, 88% interval" in table["basis"].iloc[0]


def test_one_round_is_judged_on_the_block_times_and_overlap_is_inconclusive():
    apart = pd.DataFrame([row("im2col", median_ms=10.0, iqr_ms=1.0, min_ms=9.0), row("slide", median_ms=5.0, iqr_ms=1.0, min_ms=4.0)])
    close = pd.DataFrame([row("im2col", median_ms=10.0, iqr_ms=2.0), row("slide", median_ms=9.5, iqr_ms=2.0)])
    first = slide_vs_im2col(apart).iloc[0]
    assert first["verdict"] == "holds" and (first["low"], first["high"]) == pytest.approx((9.5 / 5.5, 10.5 / 4.5))
    assert "1 round" in first["basis"]
    assert slide_vs_im2col(close)["verdict"].iloc[0] == "inconclusive"


def test_skewed_block_times_bound_the_interval_by_the_fastest_block():
    """An IQR above twice the median (a few slow blocks) must not put the middle half below zero."""
    skewed = pd.DataFrame([row("im2col", median_ms=10.8, iqr_ms=7.2, min_ms=3.7),
                           row("slide", median_ms=2.3, iqr_ms=7.6, min_ms=0.92)])
    first = slide_vs_im2col(skewed).iloc[0]
    assert (first["low"], first["high"]) == pytest.approx((7.2 / 6.1, 14.4 / 0.92))
    assert first["verdict"] == "holds"


def test_the_claim_line_holds_only_when_every_case_group_agrees():
    both = pd.concat([rounds_of({"im2col": [10, 10, 10], "slide": [5, 5, 5]}, res=14),
                      rounds_of({"im2col": [10, 10, 10], "slide": [20, 20, 20]}, res=28)])
    line = claim_line(slide_vs_im2col(both))
    assert line.startswith(CLAIM) and "INCONCLUSIVE" in line and "1 holds" in line and "1 does not hold" in line
    assert "HOLDS" in claim_line(slide_vs_im2col(rounds_of({"im2col": [10, 10, 10], "slide": [5, 5, 5]})))
    assert "not measured" in claim_line(slide_vs_im2col(pd.DataFrame([row("window")])))


def test_verdict_lines_end_with_the_claim():
    lines = verdict_lines(pd.DataFrame(grid_rows(["im2col", "slide", "window"], [14, 28], [1])))
    assert lines[-1].startswith(CLAIM) and "HOLDS" in lines[-1]  # synthetic slide takes half im2col's time
    assert any("local-zero-pad slide" in line for line in lines)


def two_machines() -> pd.DataFrame:
    """Return one cluster run (one run id) on two hosts, 3 rounds each: Slide 2x faster on node-a, 2x slower on node-b."""
    rows = []
    for host, slide in (("node-a", [5.0, 5.2, 4.8]), ("node-b", [20.0, 21.0, 19.0])):
        for variant, values in (("im2col", [10.0, 10.4, 9.6]), ("slide", slide), ("window", [1.0, 1.0, 1.0])):
            rows += [row(variant, 1, 14, host=host, median_ms=ms * (3 if host == "node-b" and variant == "window" else 1),
                         iqr_ms=0.0, round=number) for number, ms in enumerate(values, 1)]
    return pd.DataFrame(rows)


def test_verdicts_of_two_machines_are_kept_apart():
    rows = two_machines()
    table = slide_vs_im2col(rows).set_index("machine")
    assert list(table.index) == ["node-a", "node-b"]  # one case group, one comparison per machine
    assert table.loc["node-a", "speedup"] == pytest.approx(2.0) and table.loc["node-a", "verdict"] == "holds"
    assert table.loc["node-b", "speedup"] == pytest.approx(0.5) and table.loc["node-b", "verdict"] == "does not hold"
    assert (table["basis"] == "3 rounds, 75% interval").all()  # each machine's own 3 rounds, not 6 pooled
    best = fastest_per_family(rows).set_index(["machine", "family"])
    assert best.loc[("node-a", "local-zero-pad"), "variant"] == "slide"
    assert best.loc[("node-b", "local-zero-pad"), "variant"] == "im2col"
    assert best.loc[("node-b", "window"), "median_ms"] == pytest.approx(3.0)  # node-b's own window, not node-a's 1 ms
    line = claim_line(slide_vs_im2col(rows))
    assert line.startswith(f"{CLAIM}, per machine: on node-a: HOLDS") and "on node-b: DOES NOT HOLD" in line


def test_verdict_lines_of_two_machines_come_per_machine():
    lines = verdict_lines(two_machines())
    starts = [lines.index("node-a (Synthetic CPU of node-a):"), lines.index("node-b (Synthetic CPU of node-b):")]
    node_a, node_b = lines[starts[0]:starts[1]], lines[starts[1]:]
    assert node_a[-1].startswith(f"{CLAIM} on node-a: HOLDS (Im2Col / Slide time 2.00-2.00x over 1 case group")
    assert node_b[-1].startswith(f"{CLAIM} on node-b: DOES NOT HOLD (Im2Col / Slide time 0.50-0.50x")
    assert "    cpu float32 forward b1 14x14 h2 d32 k7: local-zero-pad slide 5 · window window 1" in node_a
    assert "    cpu float32 forward b1 14x14 h2 d32 k7: local-zero-pad im2col 10 · window window 3" in node_b
    assert "    cpu float32 forward b1 14x14 h2 d32 k7: 0.50x [0.50-0.51] does not hold" in node_b
    assert sum(line.startswith(CLAIM) for line in lines) == 2


def test_one_machine_keeps_its_lines():
    lines = verdict_lines(two_machines().query("host == 'node-a'"))
    assert lines[0] == "fastest exact variant of each family (median ms):"
    assert lines[-1].startswith(f"{CLAIM} on this machine: HOLDS")
