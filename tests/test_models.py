"""The model level: Swin-T is timm's Swin-T, every config matches its float64 oracle model, the claims' verdicts, the command."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import run_bench
from attention_variants import registry
from attention_variants.case import Case
from attention_variants.registry import Prepared, Variant
from bench import results
from bench.analysis import models as claims
from bench.measure.settings import Settings
from bench.models import configs
from bench.models.backbone import Backbone, Config
from bench.models.measure import ModelCase, measure_model, timm_unavailable

# sum of parameters of timm.create_model("swin_{tiny,small,base}_patch4_window7_224", "pvt_v2_b{1,2}", "pvt_v2_b2_li")
# (timm 1.0); the anchor test below counts timm's own models against these.
TIMM_PARAMS = {"swin-t": 28_288_354, "swin-s": 49_606_258, "swin-b": 87_768_224, "pvt-v2-b1": 14_009_000,
               "pvt-v2-b2": 25_362_856, "pvt-v2-b2-li": 22_553_512}
FAST = Settings(threads=2, warmup_s=0.01, min_run_s=0.02, max_run_s=0.05)


def _wrong_scale(case: Case, q, k, v) -> Prepared:
    from attention_variants.im2col import build as build_im2col  # im2col with the logits scaled twice: a planted bug

    return build_im2col(case, q * case.head_dim ** -0.5, k, v)



@pytest.mark.parametrize("config", list(TIMM_PARAMS))
def test_each_config_that_timm_has_has_its_parameter_count(config):
    assert sum(p.numel() for p in configs.CONFIGS[config].build().parameters()) == TIMM_PARAMS[config]


@pytest.mark.parametrize("config", ["swin-t", "swin-s", "swin-b"])
def test_swin_has_timms_relative_position_bias_table(config):
    model = Backbone(configs.CONFIGS[config])
    table = model.layers[0].blocks[0].attn.relative_position_bias_table
    heads = configs.CONFIGS[config].shape.heads[0]
    assert tuple(table.shape) == (169, heads)  # (2*7-1)^2 offsets x the first stage's heads, as timm names and shapes it


# Params (M) of the Slide-Transformer paper's ImageNet table (figs/exp_cls.png of its repository), rounded as printed.
PAPER_PARAMS_M = {"swin-t": 29, "slide-swin-t": 29, "swin-s": 50, "slide-swin-s": 51, "swin-b": 88, "slide-swin-b": 89}


@pytest.mark.parametrize("config", list(PAPER_PARAMS_M))
def test_parameters_are_within_3_percent_of_the_papers_table(config):
    params = sum(p.numel() for p in Backbone(configs.CONFIGS[config]).parameters())
    assert params / 1e6 == pytest.approx(PAPER_PARAMS_M[config], rel=0.03)


@pytest.mark.skipif(timm_unavailable() is not None, reason=str(timm_unavailable()))
@pytest.mark.parametrize("timm_config", list(configs.TIMM))
def test_with_timms_weights_each_config_gives_timms_output(timm_config):
    import timm

    from bench.models.measure import TIMM_FUSED_ATTN, build, timm_backend

    timm_name, config = configs.TIMM[timm_config]
    anchor, twin = build(timm_config, 224, seed=0)  # what the models command times: timm's model, and its twin
    assert timm.layers.use_fused_attn() == TIMM_FUSED_ATTN and "fused attention on" in timm_backend(timm_config)
    assert sum(p.numel() for p in anchor.parameters()) == TIMM_PARAMS[config]
    torch.manual_seed(0)
    anchor = timm.create_model(timm_name, pretrained=False).eval()
    model = configs.CONFIGS[config].build().eval()
    model.load_state_dict(anchor.state_dict(), strict=True)
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected, got = anchor(images), model(images)
    assert expected.abs().max() > 0.1 and torch.allclose(got, expected, rtol=0, atol=1e-5)


# PVT-T/S/M/L in the PVT paper's Table 1 (Wang et al., 2021), and GMACs at 224x224 (as there, a multiply-add is one).
PVT_PAPER = {"pvt-t": (13.2, 1.9), "pvt-s": (24.5, 3.8), "pvt-m": (44.2, 6.7), "pvt-l": (61.4, 9.8)}
# The Slide-Transformer paper's table (params M, GFLOPs); it has no Slide-PVT-M row. Its Slide-PVTv2 rows fit PVTv2-Li
# with slide attention in stages 1-2 (22.8M for B2; on the standard PVTv2-B2 it would be 23.5M, +3.2 %), and its
# PVTv2-B1 row (13.1M) fits PVTv2-B1-Li, where timm's standard B1 has 14.0M; its PVTv2-B2 row is the standard B2.
PVT_ROWS_OF_SLIDE_PAPER = {"slide-pvt-t": (12.2, 2.0), "slide-pvt-s": (22.7, 4.0), "slide-pvt-v2-b1": (13.0, 2.2),
                           "slide-pvt-v2-b2": (22.8, 4.2), "pvt-v2-b1-li": (13.1, 2.1), "pvt-v2-b2": (25.4, 4.0)}


def _gmacs(model: torch.nn.Module) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from bench.models.measure import CPU_SDPA_FLOPS

    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOPS) as counter:
        model(torch.randn(1, 3, 224, 224))
    return counter.get_total_flops() / 2e9


@pytest.mark.parametrize("config", list(PVT_PAPER))
def test_pvt_has_the_pvt_papers_parameters_and_flops(config):
    model = configs.CONFIGS[config].build().eval()
    params, gmacs = PVT_PAPER[config]
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params, rel=0.01)
    assert _gmacs(model) == pytest.approx(gmacs, rel=0.03)  # SRA's fused CPU kernel counted too (measure.CPU_SDPA_FLOPS)


@pytest.mark.parametrize("config", list(PVT_ROWS_OF_SLIDE_PAPER))
def test_pvt_configs_are_within_3_percent_of_the_slide_papers_table(config):
    model = configs.CONFIGS[config].build().eval()
    params, gflops = PVT_ROWS_OF_SLIDE_PAPER[config]
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params, rel=0.03)
    assert _gmacs(model) == pytest.approx(gflops, rel=0.03)


# 64x64 keeps the float64 oracle models cheap: every stage still runs (SRA reduces the 16x16 stage 1 to 2x2).
# The T and B1 sizes in the fast tier; the larger ones are the same code at other depths.
LARGER_PVTS = ["pvt-s", "pvt-m", "pvt-l", "slide-pvt-s", "slide-pvt-m", "im2col-pvt-s", "im2col-pvt-m", "pvt-v2-b2",
               "pvt-v2-b2-li", "slide-pvt-v2-b2", "im2col-pvt-v2-b2"]


@pytest.mark.parametrize("config", ["pvt-t", "slide-pvt-t", "im2col-pvt-t", "pvt-v2-b1", "pvt-v2-b1-li", "slide-pvt-v2-b1",
                                    "im2col-pvt-v2-b1",
                                    *(pytest.param(name, marks=pytest.mark.slow) for name in LARGER_PVTS)])
def test_each_pvt_config_matches_its_float64_oracle_model(config):
    row = measure_model(ModelCase(config, resolution=64), FAST).to_columns()
    assert row["status"] == "ok", row["reason"]
    assert 0 < row["max_abs_err"] <= row["tolerance"] < 1e-4 and row["params"] > 11e6  # smaller position embeddings at 64


def test_a_wrong_attention_in_a_pvt_is_a_mismatch(monkeypatch):
    from bench.models.pvt import PVT_T, Pvt

    monkeypatch.setitem(registry._REGISTRY, "test-wrong-scale", Variant("test-wrong-scale", "local-zero-pad", _wrong_scale))
    monkeypatch.setitem(configs.CONFIGS, "planted", Config("planted", configs.pvt_layout("test-wrong-scale"), "", PVT_T, Pvt))
    row = measure_model(ModelCase("planted", resolution=64), FAST).to_columns()
    assert row["status"] == "mismatch" and "max_abs_err" in row["reason"]


def test_a_whole_model_runs_under_onnxruntime_checked_against_its_oracle():
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")
    row = measure_model(ModelCase("slide-pvt-t", resolution=64, runtime="onnxruntime"), FAST).to_columns()
    assert row["status"] == "ok", row["reason"]
    assert 0 < row["max_abs_err"] <= row["tolerance"] and row["export_ms"] > 0
    skipped = measure_model(ModelCase("slide-pvt-t", resolution=64, runtime="onnxruntime", pass_name="forward_backward"), FAST)
    assert skipped.status == "skipped" and "inference only" in skipped.reason


@pytest.mark.parametrize("runtime", ["onnxruntime", "executorch", "openvino"])
def test_a_runtime_that_returns_a_wrong_answer_is_a_mismatch(monkeypatch, runtime):
    from bench.measure.runtimes import Runnable, runtime_unavailable
    from bench.models import measure

    def off_by_one_percent(model, inputs, case, threads):  # a planted bug: the traced model's logits scaled
        return Runnable(lambda images: model(images) * 1.01, export_ms=1.0)

    monkeypatch.setattr(measure, "runnable", off_by_one_percent)
    if reason := runtime_unavailable(Case(variant="im2col", runtime=runtime)):
        pytest.skip(reason)
    row = measure_model(ModelCase("pvt-t", resolution=64, runtime=runtime), FAST).to_columns()
    assert row["status"] == "mismatch" and "max_abs_err" in row["reason"]


def _tiny(monkeypatch, layout: str = "pvt-t") -> Config:
    """One block per stage of the layout, registered: a compile or a lowering is most of the cost, and grows with the graph."""
    from bench.models.pvt import PVT_DIMS, Pvt, PvtShape

    tiny = Config(f"tiny-{layout}", configs.CONFIGS[layout].layout, "", PvtShape(PVT_DIMS, (1, 1, 1, 1)), Pvt)
    monkeypatch.setitem(configs.CONFIGS, tiny.name, tiny)
    return tiny


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["executorch", "openvino"])
def test_a_whole_model_runs_under_an_edge_runtime_checked_against_its_oracle(monkeypatch, runtime):
    """A wrong answer from these runtimes is a mismatch at op level (tests/test_runtimes.py) and from any runtime here
    (test_a_runtime_that_returns_a_wrong_answer_is_a_mismatch): the same check of the runtime's output."""
    from bench.measure.runtimes import runtime_unavailable

    if reason := runtime_unavailable(Case(variant="im2col", runtime=runtime)):
        pytest.skip(reason)
    tiny = _tiny(monkeypatch, "slide-pvt-t")
    row = measure_model(ModelCase(tiny.name, resolution=64, runtime=runtime), FAST).to_columns()
    assert row["status"] == "ok", row["reason"]
    assert 0 < row["max_abs_err"] <= row["tolerance"] and row["export_ms"] > 0 and row["backend"].startswith(runtime)


@pytest.mark.slow
def test_a_whole_model_runs_compiled_by_inductor_checked_against_its_oracle(monkeypatch):
    # A training step compiles twice more (the graph with gradients, and the backward): the paper command measures those.
    tiny = _tiny(monkeypatch)
    row = measure_model(ModelCase(tiny.name, resolution=64, runtime="inductor"), FAST).to_columns()
    assert row["status"] == "ok", row["reason"]
    assert 0 < row["max_abs_err"] <= row["tolerance"]


def test_a_pvt_training_step_checks_every_gradient():
    row = measure_model(ModelCase("slide-pvt-t", resolution=64, pass_name="forward_backward"), FAST).to_columns()
    assert row["status"] == "ok", row["reason"]
    assert 0 < row["grad_max_abs_err"] <= row["grad_tolerance"]


def test_im2col_swin_t_equals_slide_swin_t_with_the_deformed_part_off():
    slide = Backbone(Config("slide-off", configs.slide_layout("slide"), "")).eval()
    im2col = Backbone(configs.CONFIGS["im2col-swin-t"]).eval()
    im2col.load_state_dict(slide.state_dict())
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = slide(images), im2col(images)
    assert a.abs().max() > 0.1 and torch.allclose(a, b, rtol=0, atol=2e-5)
    deformed = Backbone(configs.CONFIGS["slide-swin-t"]).eval()
    deformed.load_state_dict(slide.state_dict())
    with torch.no_grad():
        assert not torch.allclose(deformed(images), a, rtol=0, atol=1e-3)  # the deformed kernel does change the output


# 2 x the multiply-adds of Swin's Table 1 (4.5, 8.7, 15.4 G at 224x224): torch's flop counter counts a multiply-add as 2.
SWIN_GFLOP = {"t": 9.0, "s": 17.4, "b": 30.8}


@pytest.mark.slow
@pytest.mark.parametrize("config", ["swin-t", "slide-swin-t", "im2col-swin-t", "fast-swin-t", "swin-s", "swin-b"])
def test_each_config_matches_its_float64_oracle_model(config):
    row = measure_model(ModelCase(config), FAST).to_columns()
    assert row["status"] == "ok", row["reason"]
    assert 0 < row["max_abs_err"] <= row["tolerance"] < 1e-4 and row["params"] > 28e6
    if config.startswith("swin-"):
        assert row["gflop"] == pytest.approx(SWIN_GFLOP[config[-1]], rel=0.05)


# The Slide layouts have no window to tile (stages 3-4 attend globally), so any multiple of 32 runs them: 64x64 here
# keeps the float64 oracle model of the S and B sizes cheap; the 224 x 224 sweep is the models command's.
@pytest.mark.parametrize("config", ["slide-swin-s", "im2col-swin-s", "slide-swin-b", "im2col-swin-b"])
def test_each_slide_layout_of_the_larger_sizes_matches_its_float64_oracle_model(config):
    row = measure_model(ModelCase(config, resolution=64), FAST).to_columns()
    assert row["status"] == "ok", row["reason"]
    assert 0 < row["max_abs_err"] <= row["tolerance"] < 1e-4 and row["params"] > 49e6


@pytest.mark.slow
def test_a_training_step_is_timed_with_its_backward():
    row = measure_model(ModelCase("slide-swin-t", pass_name="forward_backward"), FAST).to_columns()
    assert row["status"] == "ok", row["reason"]
    assert 2.5 < row["gflop"] / 9.36 < 3.5  # backward: about twice the forward's multiply-adds
    assert 0 < row["grad_max_abs_err"] <= row["grad_tolerance"]  # every gradient against the float64 oracle model's


@pytest.mark.slow
def test_a_wrong_attention_is_a_mismatch_and_an_unfit_stage_is_skipped(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "test-wrong-scale", Variant("test-wrong-scale", "local-zero-pad", _wrong_scale))
    monkeypatch.setitem(configs.CONFIGS, "planted", Config("planted", configs.slide_layout("test-wrong-scale"), ""))
    row = measure_model(ModelCase("planted"), FAST).to_columns()
    assert row["status"] == "mismatch" and "max_abs_err" in row["reason"]
    skipped = measure_model(ModelCase("swin-t", resolution=256), FAST).to_columns()  # window 7 does not tile a 64x64 stage
    assert skipped["status"] == "skipped" and "window 7 does not divide 64x64" in skipped["reason"]


def _rows(times: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"variant": name, "device": "cpu", "runtime": "eager", "dtype": "float32", "height": 224, "batch": 1,
                          "pass": "forward", "status": "ok", "median_ms": ms, "round": r + 1}
                         for name, values in times.items() for r, ms in enumerate(values)])


def test_claims_hold_fail_or_stay_inconclusive_by_the_interval():
    faster = _rows({"swin-t": [140, 150, 145], "slide-swin-t": [100, 110, 104], "im2col-swin-t": [90, 95, 99]})
    table = claims.verdicts(faster).set_index("claim")
    assert table.loc["Slide-Swin-T vs Swin-T", "verdict"] == "holds"
    assert table.loc["Slide-Swin-T vs Im2Col-Swin-T", "verdict"] == "does not hold"
    assert table.loc["Slide-Swin-T vs Swin-T", "coverage"] == pytest.approx(0.75)  # 3 rounds: the range covers 75 %
    mixed = claims.verdicts(_rows({"swin-t": [100, 100], "slide-swin-t": [90, 110]})).set_index("claim")
    assert mixed.loc["Slide-Swin-T vs Swin-T", "verdict"] == "inconclusive"
    assert "INCONCLUSIVE" in claims.lines(mixed.reset_index())[0]


def test_the_papers_arrows_are_judged_at_matched_accuracy():
    """Slide-Swin-S against Swin-B (1.7x) and against Im2Col-Swin-B (3.9x), as the paper's iPhone 12 panels draw them."""
    table = claims.verdicts(_rows({"slide-swin-s": [300, 310, 305], "swin-b": [520, 530, 525],
                                   "im2col-swin-b": [200, 210, 205]})).set_index("claim")
    assert table.loc["Slide-Swin-S vs Swin-B", "verdict"] == "holds" and table.loc["Slide-Swin-S vs Swin-B", "paper"] == 1.7
    assert table.loc["Slide-Swin-S vs Im2Col-Swin-B", "verdict"] == "does not hold"
    lines = " ".join(claims.lines(table.reset_index()))
    assert "Slide-Swin-S's speed-up 1.72x" in lines and "paper: about 3.9x (iPhone 12, matched accuracy)" in lines


def test_two_machines_model_claims_are_judged_apart():
    """A merged file: each machine's rounds against each other, never one machine's model against another's."""
    fast = _rows({"swin-t": [140, 150, 145], "slide-swin-t": [100, 110, 104]}).assign(host="node-a")
    slow = _rows({"swin-t": [100, 100, 100], "slide-swin-t": [200, 210, 190]}).assign(host="node-b")
    table = claims.verdicts(pd.concat([fast, slow], ignore_index=True))
    table = table[table["claim"] == "Slide-Swin-T vs Swin-T"].set_index("host")
    assert table.loc["node-a", "verdict"] == "holds" and table.loc["node-b", "verdict"] == "does not hold"
    assert table.loc["node-b", "rounds"] == 3 and table.loc["node-b", "speedup"] == pytest.approx(0.5)
    lines = claims.lines(table.reset_index())
    assert lines[0].startswith("Slide-Swin-T vs Swin-T, node-a cpu") and "node-b cpu" in lines[1]


def test_the_paper_figure_draws_each_family_and_each_measured_arrow_once(tmp_path):
    from bench.plots import paper as figure
    from synthetic_results import models_csv

    times = {"slide-pvt-s": (40, 42), "pvt-l": (80, 84), "slide-swin-s": (170, 175), "swin-b": (240, 250), "nat-t": (90, 91)}
    fig = figure.build(results.load(models_csv(tmp_path / "m.csv", times)))
    gids = {artist.get_gid() for ax in fig.axes for artist in ax.get_children() if artist.get_gid()}
    # one arrow for the pair the paper draws on two devices; nat-t has no Top-1 in the paper, so it is not drawn
    assert {"arrow|pvt-l|slide-pvt-s", "arrow|swin-b|slide-swin-s"} <= gids and "family|nat" not in gids
    labels = [text.get_text() for ax in fig.axes for text in ax.texts]
    assert any(label.startswith("2.00x [2.00-2.00] here; paper 2.3x Metal (MPS), 1.7x iPhone 12") for label in labels)


@pytest.mark.slow
def test_the_paper_command_writes_model_rows_judges_the_arrows_and_draws_the_figure(tmp_path, capsys, monkeypatch):
    """The models command's path (bench.cli.models.measure) with the paper command's verdicts and figure."""
    monkeypatch.setenv("BENCH_PLOTS_DIR", str(tmp_path / "plots"))
    out = tmp_path / "paper.csv"
    # 64x64 (no window to tile in these layouts): the command's plumbing at a twelfth of 224x224's cost.
    assert run_bench.main(["paper", "--models", "slide-pvt-s,pvt-l", "--resolutions", "64", "--rounds", "2", "--threads", "2",
                           "--min-run-s", "0.05", "--max-run-s", "0.1", "--out", str(out)]) == 0
    rows = results.load(out)
    assert len(rows) == 4 and set(rows["scope"]) == {"model"} and sorted(rows["round"]) == [1, 1, 2, 2]
    assert (rows["status"] == "ok").all() and (rows["params"] > 11e6).all() and rows["gflop"].notna().all()
    printed = " ".join(capsys.readouterr().out.split())
    assert "Slide-PVT-S vs PVT-L on iPhone 12, cpu eager float32 64x64 batch 1 forward: Slide-PVT-S's speed-up" in printed
    assert "Slide-Swin-S vs Swin-B: NOT JUDGED here: slide-swin-s or swin-b has no ok row" in printed
    assert len(list((tmp_path / "plots").glob("*/paper.png"))) == 1


@pytest.mark.parametrize("argv,message", [
    (["--models", "swin-x"], "unknown model 'swin-x'"),
    (["--resolutions", "100"], "a Swin or PVT backbone needs a multiple of 32"),
    (["--preset", "/nonexistent.toml"], "cannot read models preset"),
])
def test_bad_models_input_is_one_line(argv, message, capsys):
    assert run_bench.main(["models", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("preset, command", [("models", "models"), ("paper-figure", "paper")])
def test_the_sweep_refuses_the_model_commands_presets(preset, command, capsys):
    assert run_bench.main(["sweep", "--preset", preset]) == 2
    assert f"is the {command} command's: run_bench.py {command}" in capsys.readouterr().err


def test_the_report_of_a_models_csv_has_the_model_table_and_the_verdicts(tmp_path):
    from synthetic_results import models_csv

    path = models_csv(tmp_path / "models.csv")
    assert run_bench.main(["report", str(path), "--no-plots"]) == 0
    text = path.with_suffix(".md").read_text()
    assert "## Model level" in text and "| slide-swin-t | cpu | eager | float32 | 1 | forward |" in text
    verdict = "Slide-Swin-T vs Swin-T, cpu eager float32 224x224 batch 1 forward: Slide-Swin-T's speed-up 1.48x"
    assert verdict in text and "HOLDS here" in text
