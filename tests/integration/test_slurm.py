"""Workers as Slurm allocations, against a real Slurm (the ``slurm_cluster`` fixture):
``jobstream slurm schedule-nodes`` submits them, every job runs inside one, GPU jobs
included, and each allocation logs in with compute credentials of its own."""

from __future__ import annotations

import json
import stat
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from .processes import jobstream, spawn, stop, wait_for_server

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

SPEC = """name: on-slurm
slurm_schedulers:
  - name: gpu_node
    account: project1
    walltime: "00:10:00"
    mem: 1G
    gres: "gpu:1"
    extra: "--cpus-per-task=2"
  - {name: broken, account: project1, partition: nosuch}
resource_requirements:
  - {name: small, num_cpus: 1, memory: 100m, runtime: PT1M}
  - {name: gpu, num_cpus: 1, num_gpus: 1, memory: 100m, runtime: PT1M}
jobs:
  - name: "cpu_{i}"
    command: "echo $SLURM_JOB_ID > cpu_{i}.txt"
    resource_requirements: small
    parameters: {i: "1:4"}
  - name: on_gpu
    command: "echo $SLURM_JOB_ID $CUDA_VISIBLE_DEVICES > gpu.txt"
    resource_requirements: gpu
"""


def slurm_state(job_id: str) -> str:
    shown = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout
    return shown.split("JobState=", 1)[1].split()[0]


async def test_a_workflow_runs_in_allocations_that_schedule_nodes_submits(
    tmp_path: Path,
) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    server = spawn("server", cwd=tmp_path, log=tmp_path / "server.log")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return jobstream(*args, cwd=tmp_path)

    try:
        await anyio.to_thread.run_sync(wait_for_server, tmp_path / ".jobstream", server)
        submitted = await anyio.to_thread.run_sync(lambda: run("submit", "spec.yaml"))
        assert submitted.returncode == 0, submitted.stderr
        wf = submitted.stdout.strip()
        refused = await anyio.to_thread.run_sync(
            lambda: run("slurm", "schedule-nodes", wf, "--scheduler", "nope")
        )
        assert refused.returncode == 2 and "has gpu_node, broken" in refused.stderr
        failed = await anyio.to_thread.run_sync(
            lambda: run("slurm", "schedule-nodes", wf, "--scheduler", "broken")
        )
        assert failed.returncode == 2 and "invalid partition" in failed.stderr.lower()
        listed = await anyio.to_thread.run_sync(lambda: run("users", "list", "--json"))
        assert [u["role"] for u in json.loads(listed.stdout)] == ["admin"]  # taken back
        assert not list((tmp_path / ".jobstream" / "slurm").glob("*"))
        done = await anyio.to_thread.run_sync(
            lambda: run(
                "slurm", "schedule-nodes", wf, "--scheduler", "gpu_node", "--idle-timeout", "3",
                "--json",
            )
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        (allocation,) = json.loads(done.stdout)
        job_id = allocation["slurm_job_id"]
        creds = Path(allocation["folder"]) / "worker.json"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert json.loads(creds.read_text())["role"] == "compute"

        waited = await anyio.to_thread.run_sync(
            lambda: jobstream("watch", wf, "--json", cwd=tmp_path, timeout=120)
        )
        assert waited.returncode == 0, waited.stderr
        counts = json.loads(waited.stdout)["counts"]
        assert {state: n for state, n in counts.items() if n} == {"completed": 5}
        for i in range(1, 5):
            assert (tmp_path / f"cpu_{i}.txt").read_text().split() == [job_id]
        assert (tmp_path / "gpu.txt").read_text().split() == [job_id, "0"]
        deadline = time.monotonic() + 60  # the worker idles out: the allocation ends
        while slurm_state(job_id) != "COMPLETED" and time.monotonic() < deadline:
            await anyio.sleep(0.5)
        assert slurm_state(job_id) == "COMPLETED"
        # The record: submitted by schedule-nodes, started and ended by the server's
        # watcher, with the worker and the attempts that ran inside it.
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline + 30:
            listed = await anyio.to_thread.run_sync(
                lambda: run("slurm", "allocations", wf, "--json")
            )
            assert listed.returncode == 0, listed.stderr
            rows = json.loads(listed.stdout)
            if rows and rows[0]["state"] == "COMPLETED":
                break
            await anyio.sleep(0.5)
        (row,) = rows
        assert row["slurm_job_id"] == job_id and row["allocation"] == allocation["identity"]
        assert (row["state"], row["workers"], row["attempts"]) == ("COMPLETED", 1, 5)
        assert row["started_at"] and row["ended_at"] and row["nodes_list"]
    finally:
        stop(server)
