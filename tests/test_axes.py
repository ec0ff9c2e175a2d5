"""An axis is declared once (bench/axes.py): a plugin's axis gets a flag, a preset key, a column and a place in the case
key, and a sweep, a resume and a merge carry it with no other code (tests/plugins/row_tiles.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from attention_variants.case import Case
from bench.axes import AXES, Axis, case_columns, case_fields, key_columns
from bench.axes import register as register_axis
from bench.results import load, load_samples
from bench.results.schema import columns

PLUGIN = ["--plugin", "tests.plugins.row_tiles"]
TINY = ["--variants", "im2col-row-tiles,im2col", "--resolutions", "9", "--kernel-sizes", "3", "--heads", "1", "--head-dim", "4",
        "--min-run-s", "0.01", "--max-run-s", "0.02", "--no-plots"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow  # three runs of run_bench.py
def test_a_plugins_axis_is_swept_resumed_and_merged_with_its_column(tmp_path: Path, cli) -> None:
    first = tmp_path / "first.csv"
    done = cli(*PLUGIN, *TINY, "--row-tiles", "1,3", "--out", str(first))
    assert done.returncode == 0, done.stderr
    rows = _rows(first)
    assert list(rows[0])[-1] == "row_tiles"  # the new column ends the header
    tiled = {row["row_tiles"]: row for row in rows if row["variant"] == "im2col-row-tiles"}
    assert set(tiled) == {"1", "3"} and all(row["status"] == "ok" for row in tiled.values()), rows
    assert {row["row_tiles"] for row in rows if row["variant"] == "im2col"} == {"1", "3"}  # a case key column: two cases
    assert set(load_samples(first).columns) >= {"row_tiles", "block_ms"}

    # A sweep killed before its last row: resume runs only that case again, under the same run id.
    text = first.read_text().splitlines(keepends=True)
    first.write_text("".join(text[:-1]))
    resumed = cli(*PLUGIN, *TINY, "--row-tiles", "1,3", "--resume", str(first))
    assert resumed.returncode == 0, resumed.stderr
    assert "3 of 4 cases already recorded, 1 to run" in resumed.stdout + resumed.stderr
    again = _rows(first)
    assert len(again) == 4 and {row["run_id"] for row in again} == {rows[0]["run_id"]}
    assert sorted((row["variant"], row["row_tiles"]) for row in again) == sorted((row["variant"], row["row_tiles"]) for row in rows)

    # A preset sets the axis too; the merge of both files keeps every row with its row_tiles.
    preset = tmp_path / "tiles.toml"
    preset.write_text("row_tiles = [9]\n")
    second = tmp_path / "second.csv"
    done = cli(*PLUGIN, *TINY, "--preset", str(preset), "--variants", "im2col-row-tiles", "--out", str(second))
    assert done.returncode == 0, done.stderr
    assert [row["row_tiles"] for row in _rows(second)] == ["9"]
    merged = tmp_path / "merged.csv"
    done = cli("merge", *PLUGIN, str(first), str(second), "--out", str(merged))
    assert done.returncode == 0, done.stderr
    assert sorted(row["row_tiles"] for row in _rows(merged)) == ["1", "1", "3", "3", "9"]
    assert len(load_samples(merged)) == len(load_samples(first)) + len(load_samples(second))

    # Without the plugin the column is unknown, and a merge says so in one line rather than dropping it.
    refused = cli("merge", str(first), "--out", str(tmp_path / "refused.csv"))
    assert refused.returncode == 2 and "row_tiles" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_a_registered_axis_reaches_the_case_the_key_and_the_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    axis = Axis("tiles", ("tiles",), "Int64", int, (1,))
    monkeypatch.setitem(AXES, "tiles", axis)  # removed again after the test
    case = Case.of(**case_fields({"variants": "im2col", "resolutions": (9, 7), "tiles": 4}))
    assert (case.tiles, case.height, case.width) == (4, 9, 7)
    assert case.replace(tiles=5).tiles == 5 and case.replace(batch=3).tiles == 4
    assert case_columns(case)["tiles"] == 4 and key_columns()[-1] == "tiles" and columns()[-1] == "tiles"
    assert Case(**{**case.__dict__, "extra": [["tiles", 4]]}) == case  # as a worker rebuilds it from JSON
    with pytest.raises(AttributeError):
        _ = case.no_such_axis
    assert register_axis(axis) is axis  # the same axis again: nothing changes
    with pytest.raises(ValueError, match="already registered differently"):
        register_axis(Axis("tiles", ("tiles",), "Int64", int, (2,)))
    with pytest.raises(ValueError, match="columns must be new"):
        register_axis(Axis("other", ("kernel_size",), "Int64", int, (2,)))
    with pytest.raises(ValueError, match="fields and columns must be new"):
        register_axis(Axis("other", ("traced",), "string", str, ("x",)))  # would hide Case.traced
    with pytest.raises(ValueError, match="give it a default"):
        register_axis(Axis("other", ("other",), "Int64", int, ()))


def test_an_old_file_without_a_later_axis_loads_with_its_fill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.csv"
    case = Case(variant="im2col", height=9, width=9, kernel_size=3)
    with open(path, "w", newline="") as handle:  # written before the axis existed
        writer = csv.DictWriter(handle, columns())
        writer.writeheader()
        writer.writerow({"run_id": "r", "timestamp": "t", **case_columns(case), "status": "ok"})
    monkeypatch.setitem(AXES, "tiles", Axis("tiles", ("tiles",), "Int64", int, (1,)))
    assert load(path)["tiles"].tolist() == [1]
