"""Results: the schema of a row, the CSV store (append, load, lock, migrate), and which rows count.

`bench.results.load(path)` is the one call a notebook needs: a typed DataFrame of a results CSV.
"""

from bench.results.guard import unwritable
from bench.results.samples import load_samples
from bench.results.schema import COLUMNS, SCHEMA, SCHEMA_VERSION, STATUSES, ResultsError
from bench.results.selection import CASE_KEY, REFERENCE_VARIANT, SHAPE_KEY
from bench.results.store import append_rows, load

__all__ = ["CASE_KEY", "COLUMNS", "REFERENCE_VARIANT", "SCHEMA", "SCHEMA_VERSION", "SHAPE_KEY", "STATUSES",
           "ResultsError", "append_rows", "load", "load_samples", "unwritable"]
