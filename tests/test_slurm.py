"""A 2-shard sweep through submitit on a real Slurm (slurmctld and slurmd on this machine), merged and checked.

The cluster starts from Debian's slurm-wlm and munge (tests/slurm_cluster.py). Where it cannot
start the test skips and says why; CI sets BENCH_REQUIRE_SLURM=1, which makes that a failure.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import results
from tests.conftest import REPO
from tests.slurm_cluster import SlurmCluster
from tests.test_cluster import TINY


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        problem = cluster.start()
        if problem:
            if os.environ.get("BENCH_REQUIRE_SLURM") == "1":
                pytest.fail(f"Slurm must start here (BENCH_REQUIRE_SLURM=1): {problem}")
            pytest.skip(f"no Slurm cluster on this machine: {problem}")
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slow
@pytest.mark.cluster
def test_two_shards_run_as_slurm_jobs_and_merge(cli, tmp_path, slurm, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    monkeypatch.setenv("BENCH_MACHINE_LOCK", str(tmp_path / "machine.lock"))
    out = tmp_path / "all.csv"
    done = cli(*TINY, "--executor", "submitit", "--shards", "2", "--slurm-partition", "bench", "--slurm-time", "10",
               "--out", str(out), "--run-id", "slurm-run", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "slurm-run"
    host = platform.node()
    assert sorted(path.name for path in folder.glob("shard-*.csv")) == [f"shard-1-{host}.csv", f"shard-2-{host}.csv"]
    merged = results.load(out)
    assert len(merged) == 4 and set(merged["status"]) == {"ok"} and set(merged["host"]) == {host}
    assert sorted(merged["height"]) == [14, 14, 28, 28] and set(merged["run_id"]) == {"slurm-run"}
    # Both jobs ran through Slurm: slurmctld knows them, on this node, finished, in the exclusive mode asked for.
    job_ids = sorted({path.name.split("_")[0] for path in (folder / "submitit").glob("*_submitted.pkl")})
    assert len(job_ids) == 2
    for job_id in job_ids:
        # The sweep ends once the jobs' results are in; the job's own process may still be exiting (Slurm: RUNNING).
        _wait_for(lambda: slurm.job(job_id)["JobState"] != "RUNNING", f"job {job_id} to end", timeout_s=60)
        job = slurm.job(job_id)
        assert job["JobState"] == "COMPLETED" and job["NodeList"] == slurm.node and job["Partition"] == "bench", job
        assert job["OverSubscribe"] == "NO" and Path(job["WorkDir"]).resolve() == Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.cluster
def test_a_preempted_job_is_requeued_and_resumes_its_shard(tmp_path, slurm, monkeypatch):
    """Slurm's preemption signal (USR2, as before a time limit): submitit checkpoints, Slurm requeues, the shard resumes."""
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    monkeypatch.setenv("BENCH_MACHINE_LOCK", str(tmp_path / "machine.lock"))
    out = tmp_path / "all.csv"
    flags = [*TINY, "--resolutions", "14,21,28,35", "--executor", "submitit", "--shards", "1", "--out", str(out),
             "--run-id", "preempted", "--min-run-s", "0.3", "--max-run-s", "0.5"]
    sweep = subprocess.Popen([sys.executable, "run_bench.py", *flags], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        shard_csv = tmp_path / "preempted" / f"shard-1-{platform.node()}.csv"
        _wait_for(lambda: shard_csv.is_file() and len(results.load(shard_csv)) >= 2, "the first rows of the shard")
        [job_id] = {path.name.split("_")[0] for path in (tmp_path / "preempted" / "submitit").glob("*_submitted.pkl")}
        subprocess.run(["scancel", "--signal=USR2", job_id], env={**os.environ}, check=True, timeout=30)
        output, _ = sweep.communicate(timeout=540)
    finally:
        sweep.kill()
    assert sweep.returncode == 0, output
    assert int(slurm.job(job_id)["Restarts"]) >= 1  # the same job id ran again
    rows = results.load(out)
    assert len(rows) == 8 and set(rows["status"]) == {"ok"}
    assert not rows.duplicated(["variant", "height"]).any()  # resumed: no case measured twice


def _wait_for(condition, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except results.ResultsError:  # a file being written for the first time
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")
