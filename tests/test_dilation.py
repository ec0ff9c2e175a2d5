"""Dilation (DiNAT): the dilated oracles, the sweep axis, and old results files (no dilation column) read as dilation 1.

Every registered variant is run at dilation 2 by tests/test_variants.py (parametrised over the registry).
"""

import csv
import warnings

import pytest
import torch

from attention_variants import natten
from attention_variants.reference import local_masked, local_zero_pad, neighborhood
from bench import results
from bench.execution import spec
from bench.execution.spec import SpecError
from bench.results.merge import merge_files
from tests.conftest import run_main

ORACLES = (local_zero_pad, local_masked, neighborhood)


def _qkv(height: int, width: int, seed: int = 0, dim: int = 4) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 2, height, width, dim, generator=generator, dtype=torch.float64) for _ in range(3)]


def _undilated_neighborhood(q, k, v, kernel_size):
    """The neighbourhood rule as written before dilation existed: the window clamped to [0, L - k]."""
    height, width, r = q.shape[2], q.shape[3], kernel_size // 2
    rows = (torch.arange(height) - r).clamp(0, height - kernel_size)[:, None] + torch.arange(kernel_size)
    cols = (torch.arange(width) - r).clamp(0, width - kernel_size)[:, None] + torch.arange(kernel_size)
    row_idx = rows[:, None, :, None].expand(height, width, kernel_size, kernel_size).reshape(height, width, -1)
    col_idx = cols[None, :, None, :].expand(height, width, kernel_size, kernel_size).reshape(height, width, -1)
    logits = torch.einsum("bhxyd,bhxysd->bhxys", q, k[:, :, row_idx, col_idx]) * q.shape[-1] ** -0.5
    return torch.einsum("bhxys,bhxysd->bhxyd", logits.softmax(-1), v[:, :, row_idx, col_idx])


def test_dilation_1_neighborhood_equals_the_undilated_rule():
    q, k, v = _qkv(9, 12)
    for kernel in (3, 5, 7):
        assert torch.equal(neighborhood(q, k, v, kernel, dilation=1), _undilated_neighborhood(q, k, v, kernel))
        assert torch.equal(neighborhood(q, k, v, kernel, dilation=1), neighborhood(q, k, v, kernel))


def _zero_pad_loops(q, k, v, kernel_size: int, dilation: int) -> torch.Tensor:
    """The dilated zero-pad definition as scalar loops: (i + d*a, j + d*b), zero key and value outside."""
    _, _, height, width, dim = q.shape
    r, out = kernel_size // 2, torch.zeros_like(q)
    for i in range(height):
        for j in range(width):
            logits, values = [], []
            for a in range(-r, r + 1):
                for b in range(-r, r + 1):
                    y, x = i + dilation * a, j + dilation * b
                    inside = 0 <= y < height and 0 <= x < width
                    key = k[0, 0, y, x] if inside else torch.zeros(dim, dtype=q.dtype)
                    values.append(v[0, 0, y, x] if inside else torch.zeros(dim, dtype=q.dtype))
                    logits.append((q[0, 0, i, j] * key).sum() / dim**0.5)
            out[0, 0, i, j] = (torch.stack(logits).softmax(0)[:, None] * torch.stack(values)).sum(0)
    return out


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_zero_pad_oracle_against_plain_loops(dilation):
    q, k, v = (t[:, :1] for t in _qkv(7, 8, dim=2))
    expected = _zero_pad_loops(q, k, v, 3, dilation)
    torch.testing.assert_close(local_zero_pad(q, k, v, 3, dilation=dilation), expected)
    if dilation == 1:
        assert torch.equal(local_zero_pad(q, k, v, 3, dilation=1), local_zero_pad(q, k, v, 3))


@pytest.mark.parametrize("oracle", ORACLES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("height,width,kernel,dilation", [(12, 10, 3, 2), (13, 11, 3, 2), (14, 16, 3, 3), (11, 15, 5, 2)])
def test_dilated_oracle_is_the_undilated_one_on_each_sub_grid(oracle, height, width, kernel, dilation):
    """Pixels (i mod d, j mod d) form a sub-grid; dilation d is dilation 1 on each (zero pad and mask alike)."""
    q, k, v = _qkv(height, width)
    out = oracle(q, k, v, kernel, dilation=dilation)
    for gi in range(dilation):
        for gj in range(dilation):
            grid = (slice(None), slice(None), slice(gi, None, dilation), slice(gj, None, dilation))
            torch.testing.assert_close(out[grid], oracle(q[grid], k[grid], v[grid], kernel), rtol=0, atol=1e-12)


@pytest.mark.skipif(not natten.HAS_NATTEN, reason="natten is not installed")
@pytest.mark.parametrize("height,width,kernel,dilation", [(9, 13, 3, 2), (11, 8, 3, 2), (14, 15, 3, 3), (15, 14, 5, 2), (12, 12, 3, 4)])
def test_neighborhood_oracle_agrees_with_natten(height, width, kernel, dilation):
    q, k, v = _qkv(height, width, dim=8)
    heads_last = lambda t: t.float().permute(0, 2, 3, 1, 4).contiguous()  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flex-fna on CPU warns that it is unfused
        out = natten._natten.na2d(heads_last(q), heads_last(k), heads_last(v), kernel, dilation=dilation, backend="flex-fna")
    torch.testing.assert_close(out.permute(0, 3, 1, 2, 4).double(), neighborhood(q, k, v, kernel, dilation=dilation),
                               atol=2e-5, rtol=2e-5)


def test_sweep_is_the_product_with_dilations():
    sweep = spec.make_sweep("quick", {"variants": ["im2col"], "resolutions": ["14"], "dilations": ["1", "2"]})
    assert sweep.dilations == (1, 2)
    assert sorted(case.dilation for case in spec.cases(sweep)) == [1, 2]
    assert {case.dilation for case in spec.cases(spec.make_sweep("quick", {"variants": ["im2col"]}))} == {1}


@pytest.mark.parametrize("dilations,message", [
    (["0"], "non-positive dilations value 0"),
    (["-2"], "non-positive dilations value -2"),
    (["1.5"], r"bad dilations value '1.5': expected an integer"),
    ([2.0], r"bad dilations value 2.0: expected an integer"),
    (["4"], r"kernel size 7 at dilation 4 spans 25 pixels, more than the image 14x14"),
])
def test_bad_dilations_are_named(dilations, message):
    with pytest.raises(SpecError, match=message):
        spec.make_sweep("quick", {"variants": ["im2col"], "resolutions": ["14", "28"], "kernel_sizes": ["7"], "dilations": dilations})


def _without_dilation(path, out):
    """Write `path` as a schema-4 file wrote it: no dilation column."""
    with open(path, newline="") as source, open(out, "w", newline="") as target:
        rows = list(csv.DictReader(source))
        writer = csv.DictWriter(target, [c for c in results.COLUMNS if c != "dilation"], lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: value for c, value in row.items() if c != "dilation"} | {"schema_version": "4"} for row in rows)


TINY = ["--variants", "im2col", "--resolutions", "7", "--kernel-sizes", "3", "--heads", "1", "--head-dim", "8",
        "--min-run-s", "0.01", "--max-run-s", "0.02", "--threads", "1", "--no-plots"]


@pytest.mark.slow  # three sweeps (in this process)
def test_old_file_loads_as_dilation_1_resumes_and_merges(tmp_path):
    new, old = tmp_path / "new.csv", tmp_path / "old.csv"
    assert run_main(["sweep", *TINY, "--out", str(new)])[0] == 0
    _without_dilation(new, old)
    assert list(results.load(old)["dilation"]) == [1]
    assert merge_files([old, new]).duplicates == 1  # the same measurement, before and after the column
    status, lines = run_main(["sweep", *TINY, "--resume", str(old)])
    assert status == 0 and any("1 of 1 cases already recorded, 0 to run" in line for line in lines), lines
    status, lines = run_main(["sweep", *TINY, "--dilations", "1,3", "--resume", str(old)])
    assert status == 0 and any("1 of 2 cases already recorded, 1 to run" in line for line in lines), lines
    frame = results.load(old)
    assert list(frame["dilation"]) == [1, 3] and frame["status"].eq("ok").all()
