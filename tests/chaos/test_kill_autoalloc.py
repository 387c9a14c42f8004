"""kill -9 what submits Slurm allocations, mid-run, against a real Slurm: the server whose
spec actions turn autoalloc on, and ``jobstream slurm autoalloc``. Restarted, they carry
on from the log: every job completes exactly once inside an allocation, every
allocation ends, and no allocation identity is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest

from ..integration.processes import jobstream, spawn, stop, wait_for_server
from ..integration.test_slurm import cancel_every_slurm_job, slurm_state

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]
JOBS = 40


def spec(autoalloc_action: bool) -> str:
    action = """actions:
  - {trigger_type: on_jobs_ready, action_type: schedule_nodes, scheduler_type: slurm,
     scheduler: cpu, num_allocations: 2}
""" if autoalloc_action else ""  # fmt: skip
    return f"""name: chaos
slurm_schedulers:
  - {{name: cpu, account: project1, walltime: "00:05:00", mem: 1G}}
{action}resource_requirements:
  - {{name: small, num_cpus: 1, memory: 100m, runtime: PT1M}}
jobs:
  - {{name: "j{{i}}", command: "echo $SLURM_JOB_ID >> out/{{i}}; sleep 0.3",
     parameters: {{i: "1:{JOBS}"}}, resource_requirements: small}}
"""


class Site:
    """A server in ``tmp_path`` on the local Slurm, and the CLI run there."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path
        self.server: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start_server(self) -> None:
        self.starts += 1
        log = self.path / f"server{self.starts}.log"
        self.server = spawn("server", cwd=self.path, log=log)
        wait_for_server(self.path / ".jobstream", self.server)

    def kill_server(self) -> None:
        assert self.server is not None
        os.kill(self.server.pid, signal.SIGKILL)
        self.server.wait()

    async def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await anyio.to_thread.run_sync(lambda: jobstream(*args, cwd=self.path, timeout=300))

    async def allocations(self, wf: str) -> list[dict[str, object]]:
        listed = await self.run("slurm", "allocations", wf, "--json")
        assert listed.returncode == 0, listed.stderr
        rows: list[dict[str, object]] = json.loads(listed.stdout)
        return rows

    async def until(self, what: str, wf: str, check: object) -> list[dict[str, object]]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = await self.allocations(wf)
            if callable(check) and check(rows):
                return rows
            await anyio.sleep(0.5)
        raise AssertionError(f"no {what} within 120 s: {rows}")

    async def check_everything_ended_once(self, wf: str) -> None:
        """Every job completed exactly once, inside an allocation; every allocation ended
        (Slurm agrees) and its identity is gone."""
        watched = await self.run("watch", wf, "--json")
        assert watched.returncode == 0, watched.stderr
        rows = await self.until("end of every allocation", wf, _all_ended)
        jobs = {str(row["slurm_job_id"]) for row in rows}
        runs = {p.name: p.read_text().split() for p in (self.path / "out").iterdir()}
        assert sorted(runs, key=int) == [str(i) for i in range(1, JOBS + 1)]
        assert all(len(ids) == 1 and ids[0] in jobs for ids in runs.values()), runs
        events = (await self.run("events", wf, "--json")).stdout.splitlines()
        completed = Counter(
            e["subject"] for e in map(json.loads, events) if e["type"] == "JobCompleted"
        )
        assert len(completed) == JOBS and set(completed.values()) == {1}
        users = json.loads((await self.run("users", "list", "--json")).stdout)
        assert [u["role"] for u in users] == ["admin"]
        assert not list((self.path / ".jobstream" / "slurm").glob("*/worker.json"))


def _all_ended(rows: list[dict[str, object]]) -> bool:
    return bool(rows) and all(row["ended_at"] for row in rows)


def _running(rows: list[dict[str, object]]) -> bool:
    return any(row["started_at"] and not row["ended_at"] for row in rows)


async def test_the_server_killed_while_its_autoalloc_runs_allocations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBSTREAM_SLURM_POLL_S", "1")
    monkeypatch.setenv("JOBSTREAM_AUTOALLOC_IDLE_TIMEOUT_S", "5")
    (tmp_path / "spec.yaml").write_text(spec(autoalloc_action=True))
    (tmp_path / "out").mkdir()
    site = Site(tmp_path)
    try:
        await anyio.to_thread.run_sync(site.start_server)
        wf = (await site.run("submit", "spec.yaml")).stdout.strip()
        await site.until("running allocation", wf, _running)
        with anyio.fail_after(60):
            while len(list((tmp_path / "out").iterdir())) < JOBS // 4:
                await anyio.sleep(0.05)
        assert len(list((tmp_path / "out").iterdir())) < JOBS  # mid-run
        await anyio.to_thread.run_sync(site.kill_server)  # its nats-server dies with it
        await anyio.to_thread.run_sync(site.start_server)  # the workers reconnect
        await site.check_everything_ended_once(wf)
        assert len(await site.allocations(wf)) <= 4  # the action's cap, on each server
    finally:
        if site.server is not None:
            stop(site.server)
        cancel_every_slurm_job()


async def test_the_autoalloc_command_killed_and_run_again(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(spec(autoalloc_action=False))
    (tmp_path / "out").mkdir()
    site = Site(tmp_path)
    command = ("slurm", "autoalloc", "", "--interval", "1", "--idle-timeout", "3")
    try:
        await anyio.to_thread.run_sync(site.start_server)
        wf = (await site.run("submit", "spec.yaml")).stdout.strip()
        first = spawn(*command[:2], wf, *command[3:], cwd=tmp_path, log=tmp_path / "aa1.log")
        await site.until("allocation", wf, bool)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        again = await site.run(*command[:2], wf, *command[3:], "--json")
        assert again.returncode == 0, again.stderr
        await site.check_everything_ended_once(wf)
    finally:
        if site.server is not None:
            stop(site.server)
        cancel_every_slurm_job()


async def test_an_allocation_whose_submitter_died_before_recording_it_is_cleared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``schedule-nodes`` killed between sbatch and its record leaves (an identity, a
    folder, a Slurm job nobody knows): once old enough, the server's watcher revokes the
    identity and cancels the job."""
    monkeypatch.setenv("JOBSTREAM_SLURM_POLL_S", "1")
    (tmp_path / "spec.yaml").write_text(spec(autoalloc_action=False))
    site = Site(tmp_path)
    state = tmp_path / ".jobstream"
    try:
        await anyio.to_thread.run_sync(site.start_server)
        wf = (await site.run("submit", "spec.yaml")).stdout.strip()
        dry = await site.run(
            "slurm", "schedule-nodes", wf, "--scheduler", "cpu", "--dry-run", "--json"
        )
        (written,) = json.loads(dry.stdout)
        folder = Path(written["folder"])
        name = f"alloc-{folder.name.rsplit('-', 1)[1]}"
        added = await site.run(
            "users", "add", name, "--role", "compute", "--out", str(folder / "worker.json")
        )
        assert added.returncode == 0, added.stderr
        held = await anyio.run_process(
            ["sbatch", "--parsable", "--hold", str(folder / "job.sbatch")]
        )
        job = held.stdout.decode().strip()
        kept = json.loads((state / "users.json").read_text())
        for user in kept["users"]:
            user["added"] -= 3600  # submitted an hour ago, never recorded
        (state / "users.json").write_text(json.dumps(kept))
        deadline = time.monotonic() + 30
        while "alloc-" in (await site.run("users", "list")).stdout:
            assert time.monotonic() < deadline, "the orphan identity was not revoked"
            await anyio.sleep(0.5)
        assert not (folder / "worker.json").exists() and (folder / "job.sbatch").exists()
        assert slurm_state(job) == "CANCELLED"
        assert await site.allocations(wf) == []  # nothing was recorded, nothing made up
    finally:
        if site.server is not None:
            stop(site.server)
        cancel_every_slurm_job()
