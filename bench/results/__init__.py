"""Results: the schema of a row, the CSV store (append, load, lock, migrate), and which rows count.

`bench.results.load(path)` is the one call a notebook needs: a typed DataFrame of a results CSV.
"""

from bench.results.guard import unwritable
from bench.results.samples import load, load_samples
from bench.results.schema import SCHEMA_VERSION, STATUSES, ResultsError, columns, dtypes
from bench.results.selection import REFERENCE_VARIANT, case_key, shape_key
from bench.results.store import append_rows

__all__ = ["REFERENCE_VARIANT", "SCHEMA_VERSION", "STATUSES", "ResultsError", "append_rows", "case_key", "columns", "dtypes",
           "load", "load_samples", "shape_key", "unwritable"]


def __getattr__(name: str) -> object:  # CASE_KEY, SHAPE_KEY, COLUMNS and SCHEMA as they were: the current ones
    from bench.results import schema, selection

    for module in (selection, schema):
        try:
            return getattr(module, name)
        except AttributeError:
            pass
    raise AttributeError(name)
