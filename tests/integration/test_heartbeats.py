"""Workers put heartbeats in the WORKERS bucket: capacity, load and the jobs they run;
a last entry on a clean stop; an entry left behind by a killed worker turns "lost?"."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from jobstream.model import JobDef, Resources, WorkerHeartbeat, WorkerState, WorkflowDef
from jobstream.ops.submit import submit_workflow
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection
from jobstream.views.workers import MISSED_BEATS, worker_heartbeats, worker_views
from jobstream.workers.context import WorkerOptions
from jobstream.workers.heartbeat import HEARTBEAT_S
from jobstream.workers.service import Worker

from .processes import jobstream, spawn, stop

CAPACITY = Resources(num_cpus=2, memory_mib=2048, runtime_s=3600)
NAP = Resources(num_cpus=1, memory_mib=1024, runtime_s=60)


async def beat_of(
    conn: Connection, worker: str, until: Callable[[WorkerHeartbeat], bool], timeout: float
) -> WorkerHeartbeat:
    """The worker's entry, once ``until`` holds for it."""
    with anyio.fail_after(timeout):
        while True:
            found = {beat.id: beat for beat in await worker_heartbeats(conn)}
            if worker in found and until(found[worker]):
                return found[worker]
            await anyio.sleep(0.2)


async def test_a_worker_reports_capacity_jobs_and_its_stop(
    conn: Connection, tmp_path: Path
) -> None:
    options = WorkerOptions(
        capacity=CAPACITY, walltime_s=3600, log_dir=tmp_path / "logs", worker_id="beating"
    )
    spec = WorkflowDef(
        name="hb",
        jobs=(JobDef(index=0, name="nap", command="sleep 30", resources=NAP),),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, lease_s=30).run)
        began = time.time()
        await tg.start(Worker(conn, options).run)
        first = await beat_of(conn, "beating", lambda beat: True, timeout=5)
        assert first.capacity == CAPACITY and first.pools == ("default",)
        assert first.pid == os.getpid() and first.state is WorkerState.RUNNING
        assert first.running == () and first.cpus_used == 0
        assert first.walltime_end is not None
        assert abs(first.walltime_end - (began + 3600)) < 5
        wf = await submit_workflow(conn, spec, workdir=str(tmp_path))
        busy = await beat_of(conn, "beating", lambda beat: bool(beat.running), HEARTBEAT_S + 5)
        assert [(job.wf, job.job, job.attempt) for job in busy.running] == [(wf, 0, 1)]
        assert busy.cpus_used == 1 and busy.memory_used_mib == 1024 and busy.held == 1
        assert busy.heartbeat_at > first.heartbeat_at
        assert busy.running[0].started_at <= busy.heartbeat_at
        tg.cancel_scope.cancel()  # a clean stop: the sleep is terminated
    last = await beat_of(conn, "beating", lambda beat: True, timeout=5)
    assert last.state is WorkerState.STOPPED and last.running == ()
    later = time.time() + 3600  # a stopped worker is never "lost?"
    assert [view.beat.id for view in await worker_views(conn, later)] == []
    (shown,) = await worker_views(conn, later, stopped=True)
    assert shown.state == "stopped" and not shown.lost


async def test_a_killed_worker_turns_lost(conn: Connection, nats_url: str, tmp_path: Path) -> None:
    worker = spawn(
        "worker", "--nats-url", nats_url, "--cpus", "1", "--memory", "1g",
        cwd=tmp_path, log=tmp_path / "worker.log",
    )  # fmt: skip
    try:
        beat: WorkerHeartbeat | None = None
        with anyio.fail_after(30):
            while beat is None:
                beat = next((b for b in await worker_heartbeats(conn) if b.pid == worker.pid), None)
                await anyio.sleep(0.2)
        listed = jobstream("workers", "--json", "--nats-url", nats_url, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        (shown,) = json.loads(listed.stdout)
        assert shown["id"] == beat.id and shown["pid"] == worker.pid
        assert shown["capacity"]["num_cpus"] == 1 and shown["capacity"]["memory_mib"] == 1024
        assert shown["state"] == "running" and shown["lost"] is False
        assert shown["running"] == [] and shown["heartbeat_age_s"] < MISSED_BEATS * HEARTBEAT_S
        os.kill(worker.pid, signal.SIGKILL)
        killed_at = time.time()
        await anyio.sleep(HEARTBEAT_S + 1)  # a live worker would have put another entry
    finally:
        stop(worker)
    last = await beat_of(conn, beat.id, lambda beat: True, timeout=5)
    assert last.heartbeat_at <= killed_at and last.state is WorkerState.RUNNING
    due = last.heartbeat_at + MISSED_BEATS * last.interval_s
    (view,) = await worker_views(conn, due - 1)
    assert view.state == "running"
    (view,) = await worker_views(conn, due + 1)
    assert view.lost and view.state == "lost?"
