"""A real single-node Slurm cluster on this machine for the tests: munge, slurmctld and slurmd on localhost.

Built from Debian's packages (slurm-wlm, munge; .ci/run installs them), with a configuration
without cgroups or accounting, on free ports and in a temporary folder. `start` returns None
or why Slurm cannot start here; `stop` ends the jobs and the daemons it started.
"""

from __future__ import annotations

import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "munge", "unmunge", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "scontrol")
MUNGE_SOCKET_DIR = Path("/run/munge")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(folder: Path, node: str) -> str:
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return "\n".join([
        "ClusterName=bench-test",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge",
        "AuthInfo=cred_expire=10",  # a requeued job may start again after this long (default 120 s)
        "ProctrackType=proctrack/linuxproc",  # no cgroups
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",  # no slurmdbd: sacct has nothing to say
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=sched_interval=2,bf_interval=1",  # a requeued job waits for a periodic pass (default 60 s, 30 s)
        "KillWait=2",  # submitit ignores the SIGTERM of a requeue: SIGKILL follows after this long (default 30 s)
        "SlurmUser=root",
        "SlurmdUser=root",
        "ReturnToService=2",
        "MpiDefault=none",
        "MinJobAge=600",  # finished jobs stay visible to scontrol while the test looks at them
        f"SlurmctldPidFile={folder}/slurmctld.pid",
        f"SlurmdPidFile={folder}/slurmd.pid",
        f"SlurmdSpoolDir={folder}/spool",
        f"StateSaveLocation={folder}/state",
        f"SlurmctldLogFile={folder}/slurmctld.log",
        f"SlurmdLogFile={folder}/slurmd.log",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={max(memory_mb - 1024, 512)} State=UNKNOWN",
        f"PartitionName=bench Nodes={node} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


class SlurmCluster:
    """One slurmctld and one slurmd (this machine is the node), configured by `conf`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.conf = folder / "slurm.conf"
        self.node = platform.node().split(".")[0]
        self.started_munge: subprocess.Popen | None = None
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self) -> str | None:
        """Start the daemons; return None when the node is idle and takes jobs, else why not (in one line)."""
        missing = [name for name in DAEMONS if shutil.which(name) is None]
        if missing:
            return f"Slurm or munge is not installed ({', '.join(missing)} missing; Debian: apt-get install slurm-wlm munge)"
        if os.geteuid() != 0:
            return "slurmd runs jobs only as root here (this test runs as another user)"
        problem = self._munge()
        if problem:
            return problem
        for sub in ("spool", "state"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(_config(self.folder, self.node))
        for daemon in ("slurmctld", "slurmd"):
            result = subprocess.run([daemon, "-f", str(self.conf)], env=self.env, capture_output=True, text=True, timeout=60)
            if result.returncode != 0:
                return f"{daemon} did not start: {(result.stderr or result.stdout).strip()[-300:]}"
        return self._wait_idle()

    def _munge(self) -> str | None:
        """Start munged unless one already answers; return why it cannot run."""
        if self._munge_works():
            return None
        MUNGE_SOCKET_DIR.mkdir(parents=True, exist_ok=True)
        try:
            user = pwd.getpwnam("munge")
            os.chown(MUNGE_SOCKET_DIR, user.pw_uid, user.pw_gid)
            command = ["runuser", "-u", "munge", "--", "munged", "--foreground"]
        except KeyError:
            command = ["munged", "--foreground", "--force"]
        self.started_munge = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._munge_works():
                return None
            if self.started_munge.poll() is not None:
                return f"munged did not start: {self.started_munge.stderr.read().strip()[-300:]}"
            time.sleep(0.2)
        return "munged started but does not answer"

    @staticmethod
    def _munge_works() -> bool:
        encode = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        if encode.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=encode.stdout, capture_output=True, timeout=10).returncode == 0

    def _wait_idle(self, timeout_s: float = 60) -> str | None:
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            result = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True, timeout=30)
            state = result.stdout.strip() or result.stderr.strip()
            if state == "idle":
                return None
            time.sleep(0.5)
        return f"the Slurm node did not become idle within {timeout_s:g} s (sinfo: {state[-200:]}); logs in {self.folder}"

    def job(self, job_id: str) -> dict[str, str]:
        """Return `scontrol show job` of a job as a dict (JobState, NodeList, WorkDir, ...)."""
        text = subprocess.run(["scontrol", "show", "job", job_id, "-o"], env=self.env, capture_output=True, text=True,
                              timeout=30).stdout
        return dict(item.split("=", 1) for item in text.split() if "=" in item)

    def stop(self) -> None:
        """Cancel every job, end the daemons started here."""
        if self.conf.exists():
            subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True, timeout=30)
            for name in ("slurmd", "slurmctld"):
                pid_file = self.folder / f"{name}.pid"
                if pid_file.is_file():
                    _terminate(int(pid_file.read_text().strip()))
        if self.started_munge is not None:
            self.started_munge.terminate()
            self.started_munge.wait(timeout=15)


def _terminate(pid: int, timeout_s: float = 15) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
