import pytest

from bench.execution import spec
from bench.execution.spec import SpecError


def test_quick_preset_runs_every_registered_variant():
    import attention_variants as av

    sweep = spec.make_sweep("quick")
    assert set(sweep.variants) == set(av.names())
    assert len(spec.cases(sweep)) == len(sweep.variants) * len(sweep.resolutions)


def test_paper_preset_pairs_resolutions_with_heads():
    sweep = spec.make_sweep("paper", {"variants": ["im2col"], "batch": ["1"]})
    shapes = {(c.height, c.heads, c.head_dim) for c in spec.cases(sweep)}
    assert shapes == {(56, 3, 32), (28, 6, 32), (14, 12, 32), (7, 24, 32)}


def test_cli_axes_override_preset_and_parse_hxw():
    sweep = spec.make_sweep("paper", {"variants": ["im2col"], "resolutions": ["56x28", "14"], "heads": ["4"]})
    assert {(c.height, c.width, c.heads) for c in spec.cases(sweep)} == {(56, 28, 4), (14, 14, 4)}


def test_largest_case_runs_first():
    sweep = spec.make_sweep("quick", {"variants": ["im2col"]})
    assert [c.height for c in spec.cases(sweep)] == [56, 28, 14]


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"kernel_sizes": ["4"]}, "even kernel size 4"),
        ({"variants": ["nope"]}, "unknown variant 'nope'"),
        ({"devices": ["tpu"]}, "unknown device 'tpu'"),
        ({"dtypes": ["float8"]}, "unknown dtype 'float8'"),
        ({"passes": ["backward"]}, "unknown pass 'backward'"),
        ({"batch": ["0"]}, "non-positive batch value 0"),
        ({"resolutions": ["-3"]}, "non-positive resolutions value -3"),
        ({"resolutions": ["5"], "kernel_sizes": ["7"]}, "kernel size 7 is larger than the image 5x5"),
        ({"heads": ["two"]}, "bad heads value 'two'"),
        ({"compiled": ["maybe"]}, "bad compiled value 'maybe'"),
        ({"runtimes": ["tensorrt"]}, "unknown runtime 'tensorrt'"),
        ({"resolutions": ["56by56"]}, "bad resolution '56by56'"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(SpecError, match=message):
        spec.make_sweep("quick", overrides)


def test_unknown_preset_lists_known():
    with pytest.raises(SpecError, match=r"unknown preset 'nope' \(known: .*quick"):
        spec.make_sweep("nope")


def test_preset_with_unknown_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('devices = ["cpu"]\nresolution = [14]\n')
    with pytest.raises(SpecError, match="unknown key 'resolution'"):
        spec.make_sweep(str(bad))


def test_preset_with_wrong_type(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('batch = ["one"]\n')
    with pytest.raises(SpecError, match="bad batch value 'one'"):
        spec.make_sweep(str(bad))
