"""A real tiny sweep draws its figures, and the analysis notebook runs top to bottom on its CSV and on a merged one."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

import run_bench
from bench.plots.figures import FIGURES
from bench.results import append_rows
from synthetic_results import grid_rows, median_ms, models_csv

slow = pytest.mark.slow  # a real sweep and the notebook, executed

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"
TINY = ["--variants", "im2col,window", "--resolutions", "14", "--batch", "1,2", "--devices", "cpu",
        "--min-run-s", "0.01", "--max-run-s", "0.05"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Run a tiny real sweep (figures on) in a scratch folder; return (folder, CSV)."""
    folder = tmp_path_factory.mktemp("sweep")
    csv = folder / "results" / "tiny.csv"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.delenv("BENCH_PLOTS_DIR", raising=False)  # this test looks for them under plots/, in its folder
        assert run_bench.main([*TINY, "--out", str(csv)]) == 0
    return folder, csv


@slow
def test_a_sweep_draws_its_figures_unless_told_not_to(sweep, tmp_path, monkeypatch):
    folder, csv = sweep
    run_id = pd.read_csv(csv)["run_id"].iloc[0]
    drawn = sorted(p.name for p in (folder / "plots" / run_id).iterdir())
    # two batch sizes: throughput too; im2col and window are the whole default view: no latency-all
    assert drawn == sorted(f"{name}.{fmt}" for name in [*FIGURES, "throughput", "roofline"] for fmt in ("png", "svg"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCH_PLOTS_DIR")
    assert run_bench.main([*TINY, "--variants", "window", "--batch", "1", "--out", "r.csv", "--no-plots"]) == 0
    assert not (tmp_path / "plots").exists()


def _with_parameters(results: Path, compare: Path | None, models: Path | None = None) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    [cell] = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source = (f"RESULTS_CSV = {str(results)!r}\nCOMPARE_CSV = {str(compare) if compare else None!r}\n"
                   f"MODELS_CSV = {str(models) if models else None!r}")
    return notebook


def test_the_notebook_is_valid_with_one_parameters_cell_and_code_that_compiles():
    """The fast tier's check of the notebook (the slow tests execute it): a valid nbformat 4 file whose
    parameters cell sets what the tests and papermill-style runs inject, and whose every code cell is Python
    (IPython's, `%matplotlib` included)."""
    from IPython.core.inputtransformer2 import TransformerManager

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    [parameters] = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert {"RESULTS_CSV", "COMPARE_CSV", "MODELS_CSV"} <= set(compile(parameters.source, "parameters", "exec").co_names)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            compile(TransformerManager().transform_cell(cell.source), f"{NOTEBOOK.name} cell {index}", "exec")


def _outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


@slow
def test_notebook_runs_top_to_bottom_and_compares_two_runs(sweep, tmp_path):
    _, csv = sweep
    # A second "machine": the same rows under another host and run id, with window skipped.
    other = pd.read_csv(csv, dtype=str, keep_default_na=False)
    other["host"], other["run_id"] = "other-machine", "20990101-000000-ffffff"
    window = other["variant"] == "window"
    other.loc[window, ["status", "reason", "median_ms"]] = ["skipped", "window: not on this machine", ""]
    other_csv = tmp_path / "other.csv"
    other.to_csv(other_csv, index=False)

    notebook = _with_parameters(csv, other_csv, models_csv(tmp_path / "models.csv"))
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"python:  {sys.executable}" in text  # the kernel is this environment's python
    assert str(csv) in text
    # the model-level verdict
    assert "Slide-Swin-T vs Swin-T, cpu eager float32 224x224 batch 1 forward: Slide-Swin-T's speed-up 1.48x" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # latency, speed-up, throughput (two batch sizes), roofline, memory, accuracy (no latency-all: im2col and window are
    # the whole default view), then latency and speed-up of the two runs side by side
    assert len(images) == 6 + 2
    assert "fastest exact variant of each family" in text and "not measured (this run has no ok slide" in text  # the verdict
    html = "\n".join(o["data"].get("text/html", "") for o in outputs if "data" in o)
    assert "time_ratio" in html and "im2col" in html
    markdown = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert markdown and "## Median latency (ms)" in markdown[0]


@slow
def test_notebook_compares_the_machines_of_a_merged_file(tmp_path):
    """A file merged from a cluster run (two CPU nodes, a GPU node): every cell runs, and the machines are compared."""
    merged = tmp_path / "merged.csv"
    variants = ["im2col", "slide", "window", "natten"]
    append_rows(merged, grid_rows(variants, [14, 28], [1, 2], host="node-a"))
    append_rows(merged, grid_rows(variants, [14, 28], [1, 2], host="node-b", median_ms=3.5))
    append_rows(merged, grid_rows(variants[:3], [28], [1, 2], host="gpu-c", device="cuda", device_name="Synthetic GPU"))
    notebook = _with_parameters(merged, None)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    assert not [o for o in _outputs(notebook) if o.output_type == "error"]
    [cell] = [c for c in notebook.cells if c.cell_type == "code" and "machines_figure(" in c.source]
    text = "\n".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    # the largest case measured on all three machines, its medians per machine
    assert "Median latency (ms) per machine, the largest case measured on the most machines: 28×28 · batch 2" in text
    assert len([o for o in cell.outputs if "image/png" in o.get("data", {})]) == 1  # the machines figure
    [table] = [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
    assert all(host in table for host in ("node-a", "node-b", "gpu-c")) and "cuda" in table
    assert f"{median_ms('im2col', 2, 28, 28):.1f}" in table and "3.5" in table
    everything = "\n".join(o.get("text", "") for o in _outputs(notebook) if o.output_type == "stream")
    assert "3 machine(s): node-a, node-b, gpu-c" in everything
