"""A plugin that makes submitit jobs fail at their start, for the resubmission tests.

Imported inside a submitit job (SUBMITIT_EXECUTOR is set there, not in the submitting process),
it raises until the file FLAKY_JOB_MARKER holds FLAKY_JOB_FAILURES lines, adding one line per
failure: the first job(s) fail, a resubmitted one runs.
"""

import os
from pathlib import Path

if os.environ.get("SUBMITIT_EXECUTOR"):
    marker = Path(os.environ["FLAKY_JOB_MARKER"])
    failed_before = marker.read_text().count("\n") if marker.exists() else 0
    if failed_before < int(os.environ.get("FLAKY_JOB_FAILURES", "1")):
        with open(marker, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        raise RuntimeError("planted failure of this job (tests/plugins/flaky_job.py)")
