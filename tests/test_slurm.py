"""A 2-shard sweep through submitit on a real Slurm (slurmctld and slurmd on this machine), merged and checked.

The cluster starts from Debian's slurm-wlm and munge (tests/slurm_cluster.py). Where it cannot
start the test skips and says why; CI sets BENCH_REQUIRE_SLURM=1, which makes that a failure.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from bench import results
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
        job = slurm.job(job_id)
        assert job["JobState"] == "COMPLETED" and job["NodeList"] == slurm.node and job["Partition"] == "bench", job
        assert job["OverSubscribe"] == "NO" and Path(job["WorkDir"]).resolve() == Path(__file__).resolve().parent.parent
