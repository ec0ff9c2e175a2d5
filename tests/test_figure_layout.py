"""Every figure reads at a glance: no two texts overlap, none leaves the figure, whatever the run holds."""

from __future__ import annotations

import itertools

import pytest
from matplotlib.text import Text

from bench.analysis.frames import headline_variants, load_results
from bench.plots.figures import FIGURES, OPTIONAL_FIGURES
from bench.plots.style import FIXED
from bench.results.machines import machines
from bench.results.schema import RUNTIMES
from synthetic_results import row, write_csv

FAMILIES = {"im2col": "local-zero-pad", "slide": "local-zero-pad", "slide-deformed": "local-deformed", "window": "window",
            "window-shifted": "window-shifted", "natten": "neighborhood", "local-fused": "local-zero-pad",
            "local-halo": "local-zero-pad", "slide-grouped": "local-zero-pad", "slide-channels-last": "local-zero-pad",
            "flex-neighborhood": "neighborhood", "flex-local-masked": "local-masked", "local-views": "local-zero-pad",
            "local-tiled": "local-zero-pad", "a-plugin-with-a-rather-long-name": "local-masked"}
ROOF = dict(peak_gflop_per_s=80.0, peak_gb_per_s=15.0, bound="compute")


def _rows(variants, resolutions, batches, kernel_sizes=(7,), run_id="20260101-000000-aaaaaa", host="synthetic-a", **overrides):
    rows = []
    for i, (variant, res, batch, k) in enumerate(itertools.product(variants, resolutions, batches, kernel_sizes)):
        ms = (1 + i % 7) * 0.37 * batch * res * res / 196 * k / 7
        skipped = variant == "flex-local-masked" and res > 28
        rows.append(row("im2col", batch, res, run_id=run_id, host=host, kernel_size=k, median_ms=ms,
                        iqr_ms=ms * (0.2 if i % 5 == 0 else 0.02),
                        throughput_per_s=batch / ms * 1e3, max_abs_err=10.0 ** -(5 + i % 3), tolerance=1e-4,
                        gflop_per_s=0.01 * k * k / ms, arithmetic_intensity=0.25 * k * k, **ROOF,
                        status="skipped" if skipped else "ok", reason="eager FlexAttention is dense (N x N) above 256 tokens" * skipped,
                        **overrides)
                    | {"variant": variant, "family": FAMILIES[variant]})
        if skipped:
            rows[-1].update(median_ms=None, iqr_ms=None)
    return rows


def _runtime_rows():
    """Every variant under each runtime, a quarter as fast per step; some of the exports fail."""
    rows = []
    for speed, runtime in enumerate(RUNTIMES, 1):
        for line in _rows(list(FAMILIES), [14, 56], [1], runtime=runtime):
            rows.append(line | {"median_ms": line["median_ms"] and line["median_ms"] / speed ** 2})
    for line in rows[17::5]:
        if line["runtime"] != "eager" and line["status"] == "ok":
            line.update(status="error", reason=f"torch.onnx.export failed: DispatchError: no function for {line['variant']}",
                        median_ms=None, iqr_ms=None)
    return rows


RUNS = {
    "quick preset, every variant": lambda: _rows(list(FAMILIES), [14, 28, 56], [1]),
    "paper-like: stages and batch sizes": lambda: _rows(list(FAMILIES), [7, 14, 28, 56], [1, 2, 4, 8]),
    "kernel sizes swept": lambda: _rows(["im2col", "slide", "natten", "local-tiled"], [28, 56], [1], kernel_sizes=(3, 7, 11)),
    "two machines side by side": lambda: _rows(list(FAMILIES)[:6], [14, 56], [1, 8])
                                         + _rows(list(FAMILIES)[:6], [14, 56], [1, 8], run_id="20260102-000000-bbbbbb", host="b"),
    # One file merged from a cluster run: two CPU nodes and a GPU node (cuda rows, fewer variants and resolutions).
    "three machines merged, one a GPU node": lambda: _rows(list(FAMILIES), [14, 28, 56], [1, 8], host="cpu-node-01")
                                                    + _rows(list(FAMILIES), [14, 28, 56], [1, 8], host="cpu-node-02")
                                                    + _rows(list(FAMILIES)[:9], [28, 56], [1, 8], host="gpu-node-with-a-long-hostname-17",
                                                            device="cuda", device_name="NVIDIA H100 80GB HBM3"),
    "every runtime, some exports failing": _runtime_rows,
}


def clashes(fig) -> list[str]:
    """Return the texts of fig that overlap another text or leave the figure (tick labels only where shown)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tick_labels, shown = set(), []
    for ax in fig.axes:
        for axis, (low, high) in ((ax.xaxis, sorted(ax.get_xlim())), (ax.yaxis, sorted(ax.get_ylim()))):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels |= {id(tick.label1), id(tick.label2)}
                if low - 1e-9 * abs(low) <= tick.get_loc() <= high + 1e-9 * abs(high) and tick.label1.get_visible():
                    shown.append(tick.label1)
    texts = [t for t in fig.findobj(Text) if id(t) not in tick_labels and t.get_visible()] + shown
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_text().strip()]
    found = [f"outside: {text!r}" for text, box in boxes
             if box.x0 < -1 or box.y0 < -1 or box.x1 > fig.bbox.x1 + 1 or box.y1 > fig.bbox.y1 + 1]
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        if min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0) > 1 and min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0) > 1:
            found.append(f"{a!r} overlaps {b!r}")
    return found


# The fast tier draws one run's figures; the others (5-10 s each: matplotlib lays out every text) are slow.
@pytest.mark.parametrize("run", [run if run == "quick preset, every variant" else pytest.param(run, marks=pytest.mark.slow)
                                 for run in RUNS])
def test_no_text_of_any_figure_overlaps_another_or_leaves_the_figure(run, tmp_path):
    frame = load_results([write_csv(tmp_path / "r.csv", RUNS[run]())])
    drawn = []
    for name, build in {**FIGURES, **OPTIONAL_FIGURES}.items():
        fig = build(frame)
        if fig is not None:
            drawn.append(name)
            assert clashes(fig) == [], name
    assert set(FIGURES) <= set(drawn)
    assert ("machines" in drawn) == (len(machines(frame)) > 1)  # the machine comparison: whenever the file has several
    assert ("runtimes" in drawn) == (frame["runtime"].nunique() > 1)


def test_a_planted_overlap_is_found(tmp_path):
    fig = FIGURES["latency"](load_results([write_csv(tmp_path / "r.csv", RUNS["quick preset, every variant"]())]))
    fig.axes[0].text(0.5, 0.5, "planted", transform=fig.axes[0].transAxes)
    fig.axes[0].text(0.5, 0.5, "planted twice", transform=fig.axes[0].transAxes)
    assert any("'planted' overlaps 'planted twice'" in clash for clash in clashes(fig))


def test_the_default_view_is_the_seed_formulations_and_the_fastest_of_each_family(tmp_path):
    frame = load_results([write_csv(tmp_path / "r.csv", RUNS["quick preset, every variant"]())])
    chosen = headline_variants(frame)
    assert chosen[:4] == ["im2col", "slide", "natten", "window"]
    assert len(set(frame.loc[frame["variant"].isin(chosen), "family"])) == frame["family"].nunique()  # every family
    assert len(chosen) < frame["variant"].nunique()
    latency = FIGURES["latency"](frame)
    labels = {t.get_text().split(" (")[0] for t in latency.legends[0].get_texts()}
    assert set(chosen) <= labels and not (set(FIXED) - set(chosen)) & labels
    assert OPTIONAL_FIGURES["latency-all"](frame) is not None  # the full set has its own figure
