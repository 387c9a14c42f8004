"""Workers as Slurm allocations, against a real Slurm (the ``slurm_cluster`` fixture):
``jobstream slurm schedule-nodes`` submits them, every job runs inside one, GPU jobs
included, and each allocation logs in with compute credentials of its own."""

from __future__ import annotations

import contextlib
import json
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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


Run = Callable[..., Awaitable[subprocess.CompletedProcess[str]]]


@contextlib.asynccontextmanager
async def on_a_server(tmp_path: Path, spec: str) -> AsyncIterator[tuple[Run, str]]:
    """A `jobstream server` in ``tmp_path`` with ``spec`` submitted: a way to run the CLI
    there, and the workflow's id. Afterwards the server stops and no Slurm job is left."""
    (tmp_path / "spec.yaml").write_text(spec)
    server = spawn("server", cwd=tmp_path, log=tmp_path / "server.log")

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await anyio.to_thread.run_sync(lambda: jobstream(*args, cwd=tmp_path, timeout=300))

    try:
        await anyio.to_thread.run_sync(wait_for_server, tmp_path / ".jobstream", server)
        submitted = await run("submit", "spec.yaml")
        assert submitted.returncode == 0, submitted.stderr
        yield run, submitted.stdout.strip()
    finally:
        stop(server)
        cancel_every_slurm_job()


def slurm_state(job_id: str) -> str:
    shown = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout
    return shown.split("JobState=", 1)[1].split()[0]


async def test_a_workflow_runs_in_allocations_that_schedule_nodes_submits(
    tmp_path: Path,
) -> None:
    async with on_a_server(tmp_path, SPEC) as (run, wf):
        refused = await run("slurm", "schedule-nodes", wf, "--scheduler", "nope")
        assert refused.returncode == 2 and "has gpu_node, broken" in refused.stderr
        failed = await run("slurm", "schedule-nodes", wf, "--scheduler", "broken")
        assert failed.returncode == 2 and "invalid partition" in failed.stderr.lower()
        node = str(tmp_path / "node.json")
        assert (
            await run("users", "add", "node", "--role", "compute", "--out", node)
        ).returncode == 0
        as_node = await run(
            "--creds", node, "slurm", "schedule-nodes", wf, "--scheduler", "gpu_node"
        )
        assert as_node.returncode == 2 and "for the server's admin" in as_node.stderr
        assert (await run("users", "revoke", "node")).returncode == 0
        listed = await run("users", "list", "--json")
        assert [u["role"] for u in json.loads(listed.stdout)] == ["admin"]  # taken back
        assert not list((tmp_path / ".jobstream" / "slurm").glob("*"))
        done = await run(
            "slurm", "schedule-nodes", wf, "--scheduler", "gpu_node", "--idle-timeout", "3",
            "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        (allocation,) = json.loads(done.stdout)
        job_id = allocation["slurm_job_id"]
        creds = Path(allocation["folder"]) / "worker.json"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert json.loads(creds.read_text())["role"] == "compute"

        waited = await run("watch", wf, "--json")
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
            listed = await run("slurm", "allocations", wf, "--json")
            assert listed.returncode == 0, listed.stderr
            rows = json.loads(listed.stdout)
            if rows and rows[0]["state"] == "COMPLETED":
                break
            await anyio.sleep(0.5)
        (row,) = rows
        assert row["slurm_job_id"] == job_id and row["allocation"] == allocation["identity"]
        assert (row["state"], row["workers"], row["attempts"]) == ("COMPLETED", 1, 5)
        assert row["started_at"] and row["ended_at"] and row["nodes_list"]


AUTOALLOC_SPEC = """name: autoalloc
slurm_schedulers:
  - {name: short_cpu, account: project1, walltime: "00:03:00", mem: 1G}
  - {name: gpu_long, account: project1, walltime: "00:10:00", mem: 1G, gres: "gpu:1"}
actions:
  - {trigger_type: on_jobs_ready, action_type: schedule_nodes, scheduler_type: slurm,
     scheduler: short_cpu, num_allocations: 2}
  - {trigger_type: on_jobs_ready, action_type: schedule_nodes, scheduler_type: slurm,
     scheduler: gpu_long}
resource_requirements:
  - {name: small, num_cpus: 1, memory: 100m, runtime: PT1M}
  - {name: gpu, num_cpus: 1, num_gpus: 1, memory: 100m, runtime: PT1M}
  - {name: long, num_cpus: 1, memory: 100m, runtime: PT5M}
jobs:
  - {name: "cpu_{i}", command: "echo $SLURM_JOB_ID > out/cpu_{i}", parameters: {i: "1:46"},
     resource_requirements: small}
  - {name: "gpu_{i}", command: "echo $SLURM_JOB_ID $CUDA_VISIBLE_DEVICES > out/gpu_{i}",
     parameters: {i: "1:3"}, resource_requirements: gpu}
  - {name: long, command: "echo $SLURM_JOB_ID > out/long", resource_requirements: long}
"""


async def test_a_workflow_runs_entirely_in_allocations_that_autoalloc_submits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 jobs, GPU ones included, submitted with autoalloc on (the spec's
    schedule_nodes actions): the server submits allocations for the backlog, every job
    runs inside one, the 5-minute job never in an allocation of 3 minutes, and each
    allocation ends once idle, its identity revoked."""
    (tmp_path / "out").mkdir()
    monkeypatch.setenv("JOBSTREAM_SLURM_POLL_S", "1")
    monkeypatch.setenv("JOBSTREAM_AUTOALLOC_IDLE_TIMEOUT_S", "5")
    async with on_a_server(tmp_path, AUTOALLOC_SPEC) as (run, wf):
        waited = await run("watch", wf, "--json")
        assert waited.returncode == 0, waited.stderr
        counts = json.loads(waited.stdout)["counts"]
        assert {state: n for state, n in counts.items() if n} == {"completed": 50}

        deadline = time.monotonic() + 90  # every allocation idles out and is recorded ended
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            listed = await run("slurm", "allocations", wf, "--json")
            assert listed.returncode == 0, listed.stderr
            rows = json.loads(listed.stdout)
            if rows and all(row["ended_at"] for row in rows):
                break
            await anyio.sleep(1)
        by_job = {str(row["slurm_job_id"]): row for row in rows}
        assert all(row["state"] == "COMPLETED" for row in rows), rows
        assert sum(int(str(row["attempts"])) for row in rows) == 50
        assert {slurm_state(job) for job in by_job} == {"COMPLETED"}  # Slurm agrees
        assert len(rows) <= 3  # the actions' num_allocations: 2 short_cpu + 1 gpu_long
        ran_in = {p.name: p.read_text().split() for p in (tmp_path / "out").iterdir()}
        assert len(ran_in) == 50 and all(words[0] in by_job for words in ran_in.values())
        for name, words in ran_in.items():  # GPU and long jobs only where they fit
            if name.startswith(("gpu", "long")):
                assert by_job[words[0]]["scheduler"] == "gpu_long", (name, words)
            assert len(words) == (2 if name.startswith("gpu") else 1)
        started = await run("events", wf, "long", "--json")
        kinds = [json.loads(line)["type"] for line in started.stdout.splitlines()]
        assert kinds.count("JobStarted") == 1  # in the 10-minute allocation, at once
        users = json.loads((await run("users", "list", "--json")).stdout)
        assert [u["role"] for u in users] == ["admin"]  # every allocation's identity revoked
        assert not list((tmp_path / ".jobstream" / "slurm").glob("*/worker.json"))


def cancel_every_slurm_job() -> None:
    """The test cluster's jobs are all ours: none outlives its test."""
    listed = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
    for job in listed.stdout.split():
        subprocess.run(["scancel", job], check=False)


async def test_the_autoalloc_command_serves_one_workflow_until_it_is_finished(
    tmp_path: Path,
) -> None:
    async with on_a_server(tmp_path, SPEC) as (run, wf):
        for wrong, says in (
            (("--scheduler", "nope"), "has no slurm scheduler 'nope'"),
            (("--max-queued", "0"), "autoalloc_max_queued"),
            (("--interval", "0"), "slurm_poll_s"),
        ):
            refused = await run("slurm", "autoalloc", wf, *wrong)
            assert refused.returncode == 2 and says in refused.stderr, refused.stderr
        served = await run(
            "slurm", "autoalloc", wf, "--scheduler", "gpu_node", "--interval", "1",
            "--idle-timeout", "3", "--max-queued", "1", "--json",
        )  # fmt: skip
        assert served.returncode == 0, served.stderr
        assert json.loads(served.stdout) == {"workflow": wf, "allocations_submitted": 1}
        assert "submitted (Slurm job" in served.stderr
        status = json.loads((await run("status", wf, "--json")).stdout)
        assert status["succeeded"]
