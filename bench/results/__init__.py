"""Results: the schema of a row, the CSV store (append, load, lock, migrate), and which rows count.

`bench.results.load(path)` is the one call a notebook needs: a typed DataFrame of a results CSV.
Names are imported on first use, so that a process that needs only the schema (a worker's
protocol) does not import pandas.
"""

import importlib

# name -> the module of bench.results that defines it
_WHERE = {
    "unwritable": "guard", "load": "samples", "load_samples": "samples", "SCHEMA_VERSION": "schema", "STATUSES": "schema",
    "ResultsError": "schema", "columns": "schema", "dtypes": "schema", "SCHEMA": "schema", "COLUMNS": "schema",
    "REFERENCE_VARIANT": "selection", "case_key": "selection", "shape_key": "selection", "CASE_KEY": "selection",
    "SHAPE_KEY": "selection", "append_rows": "store",
}
__all__ = sorted(name for name in _WHERE if not name.isupper() or name in ("REFERENCE_VARIANT", "SCHEMA_VERSION", "STATUSES"))


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'bench.results' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bench.results.{_WHERE[name]}"), name)
