"""The tidy results schema: the columns of a row, their dtypes, the statuses, the schema version."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.axes import AXES, RUNTIMES, axis_columns, fills, key_columns


@dataclass(frozen=True)
class Migration:
    """One change of the schema and how store.load reads a file written before it."""

    version: int
    change: str
    # old column -> (new column, old cell -> new cell)
    renamed: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)


# Every version of a row, in order. A column added later loads empty in older files, or as its
# axis's fill (bench/axes.py: rows from before dilation were measured at dilation 1).
MIGRATIONS = (
    Migration(1, "the first columns (files from before schema_version existed)"),
    Migration(2, "schema_version in every row"),
    Migration(3, "the oracle check's accepted errors: tolerance, mean_abs_err, mean_tolerance"),
    Migration(4, "scope (op or model) and a model's params"),
    Migration(5, "dilation (a case key column; older rows: dilation 1)"),
    Migration(6, "runtime replaces the boolean compiled (older rows: true is inductor, false eager); export_ms",
              renamed={"compiled": ("runtime", {"true": "inductor", "false": "eager"})}),
    Migration(7, "the gradient check: grad_max_abs_err, grad_tolerance, grad_mean_abs_err, grad_mean_tolerance"),
)
SCHEMA_VERSION = MIGRATIONS[-1].version  # written in every row
STATUSES = ("ok", "skipped", "oom", "error", "timeout", "mismatch")
# Not a column: the time per call of each timed block, in a worker's answer and its row until stored (a list),
# and in a loaded frame (bench.results.load: a tuple, or None where none was kept).
SAMPLES_FIELD = "block_ms"
__all__ = ["RUNTIMES", "STATUSES", "SCHEMA_VERSION", "columns", "dtypes"]

# Largest |variant - float64 oracle| ever accepted per dtype (bench/measure/correctness.py accepts
# less where the plain formulation does better; compiled rows, whose error adds drift, get this).
TOLERANCE = {"float64": 1e-9, "float32": 1e-4, "float16": 1e-2, "bfloat16": 6e-2}



def _axis(name: str) -> dict[str, str]:
    """Return the columns of a built-in axis of bench/axes.py and their dtypes (declared there)."""
    return {column: AXES[name].dtype for column in AXES[name].columns}


# Column -> pandas dtype, in the order files have them. Add columns at the end; never rename without
# a reason. An axis added later (bench/axes.py, or a plugin's) appends its columns after these: dtypes().
_BUILT_IN: dict[str, str] = {
    "run_id": "string",
    "timestamp": "string",
    **_axis("variants"),
    "family": "string",
    **_axis("devices"),
    "device_name": "string",
    **_axis("dtypes"),
    **_axis("batch"),
    **_axis("resolutions"),  # height, width
    **_axis("heads"),
    **_axis("head_dim"),
    **_axis("kernel_sizes"),
    **_axis("passes"),  # pass
    **_axis("runtimes"),  # eager, inductor, export or onnxruntime (bench/axes.py RUNTIMES)
    "status": "string",
    "reason": "string",
    "median_ms": "float64",
    "iqr_ms": "float64",
    "min_ms": "float64",
    "n_measurements": "Int64",
    "peak_mem_mb": "float64",
    "throughput_per_s": "float64",
    "gflop": "float64",
    "gflop_per_s": "float64",
    "max_abs_err": "float64",
    "threads": "Int64",
    "host": "string",
    "cpu": "string",
    "gpu": "string",
    "torch_version": "string",
    "natten_version": "string",
    "git_sha": "string",
    "backend": "string",
    # compile time and the roofline (bench/measure/roofline.py)
    "compile_ms": "float64",
    "peak_gflop_per_s": "float64",
    "peak_gb_per_s": "float64",
    "bytes_moved": "float64",
    "arithmetic_intensity": "float64",
    "roofline_fraction": "float64",
    "bound": "string",
    "schema_version": "Int64",
    # what the timed calls cost the process besides compute (bench/measure/timing.py), and the
    # allocator and round they ran under (bench/execution/allocator.py, --repeats)
    "minor_faults_per_call": "float64",
    "major_faults_per_call": "float64",
    "voluntary_switches_per_call": "float64",
    "involuntary_switches_per_call": "float64",
    "allocator": "string",
    "round": "Int64",
    # the accepted errors of the oracle check (bench/measure/correctness.py): ok needs
    # max_abs_err <= tolerance and mean_abs_err <= mean_tolerance
    "tolerance": "float64",
    "mean_abs_err": "float64",
    "mean_tolerance": "float64",
    # what a row measures: `op` (one attention call; empty in files before version 4) or `model`
    # (a whole backbone, bench/models: variant = the config, height = width = the image side,
    # heads/head_dim/kernel_size = its first stage's), and a model's parameter count
    "scope": "string",
    "params": "Int64",
    # the case's dilation (DiNAT): neighbours d pixels apart; a case key column
    **_axis("dilations"),
    # the one-off cost of the export and onnxruntime runtimes: torch.export, or the ONNX export
    # (the AOTInductor build or the ONNX Runtime session, and the first call, are compile_ms)
    "export_ms": "float64",
    # forward_backward: the gradients (dq, dk, dv) against the float64 oracle's (bench/measure/gradients.py),
    # for the input nearest its bounds; ok needs every input within both; empty for forward rows
    "grad_max_abs_err": "float64",
    "grad_tolerance": "float64",
    "grad_mean_abs_err": "float64",
    "grad_mean_tolerance": "float64",
}
def dtypes() -> dict[str, str]:
    """Return column -> pandas dtype of every column a row has now: the built-in ones, then those of axes added later."""
    return {**_BUILT_IN, **axis_columns()}


def columns() -> tuple[str, ...]:
    """Return the columns of a results file, in order (a plugin's axes at the end)."""
    return tuple(dtypes())


def __getattr__(name: str) -> object:  # bench.results.SCHEMA and COLUMNS for notebooks: the current ones
    if name == "SCHEMA":
        return dtypes()
    if name == "COLUMNS":
        return columns()
    raise AttributeError(name)


# Columns renamed since: old name -> (new name, old cell -> new cell), from MIGRATIONS (store.load renames them).
RENAMED = {old: new for migration in MIGRATIONS for old, new in migration.renamed.items()}
# Without these a CSV is not a results file (every reader needs them). Other columns may be
# missing (files written before a column was added): they load as empty, or as their axis's fill
# (bench/axes.py: rows written before dilation existed were measured at dilation 1).
REQUIRED = ("run_id", *(c for c in key_columns() if c not in fills()), "status", "reason", "median_ms", "iqr_ms", "min_ms",
            "n_measurements")


class ResultsError(ValueError):
    """A results file that cannot be read as this schema; the message is one line."""
