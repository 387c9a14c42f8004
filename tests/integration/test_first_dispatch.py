"""Large submissions do not hold anything up: the scheduler dispatches before it has made
every job ready, and hears other events while it works through them; a worker binds to
a new class when the server announces its consumer, not at its next look."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from nats.js.api import ConsumerInfo

from jobstream.events import JobBlocked
from jobstream.model import JobState, Resources
from jobstream.ops.submit import submit_workflow
from jobstream.scheduler import service as scheduler_service
from jobstream.scheduler.service import Scheduler
from jobstream.scheduler.state import DispatchIntent, SchedulerState
from jobstream.streams.connection import Connection
from jobstream.streams.reader import read_until_caught_up
from jobstream.streams.setup import ensure_class_consumer
from jobstream.streams.store import EventStore
from jobstream.streams.subjects import WORK_STREAM, job_subjects, workflow_filter
from jobstream.workers import service as worker_service
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

from .helpers import SMALL, workflow

JOBS = 1000


async def test_first_jobs_are_dispatched_before_all_are_ready(
    conn: Connection, tmp_path: Path
) -> None:
    wf = await submit_workflow(
        conn, workflow(*((f"j{i}", "true", ()) for i in range(JOBS))), workdir=str(tmp_path)
    )
    scheduler = Scheduler(conn, lease_s=30)
    ready_at_dispatch: list[int] = []
    dispatch = scheduler.dispatcher.dispatch

    async def noting(state: SchedulerState, intents: list[DispatchIntent]) -> None:
        if intents:
            ready_at_dispatch.append(state.workflows[wf].counts[JobState.READY])
        await dispatch(state, intents)

    scheduler.dispatcher.dispatch = noting  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        with anyio.fail_after(30):
            while (await conn.js.stream_info(WORK_STREAM)).state.messages < JOBS:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    # Before: the JobReady of all 1,000 jobs was acknowledged before the first WORK message.
    assert ready_at_dispatch[0] <= scheduler_service.FIRST_CHUNK < JOBS
    assert (await conn.js.stream_info(WORK_STREAM)).state.messages == JOBS


async def test_worker_binds_to_a_new_class_when_its_consumer_is_created(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_service, "BIND_INTERVAL_S", 3600.0)  # no second look
    looks = 0
    consumers_info = conn.js.consumers_info

    async def counted(stream: str) -> list[ConsumerInfo]:
        nonlocal looks
        found = await consumers_info(stream)
        looks += 1
        return found

    monkeypatch.setattr(conn.js, "consumers_info", counted)
    options = WorkerOptions(
        capacity=Resources(num_cpus=2, memory_mib=1024), log_dir=tmp_path / "logs"
    )
    worker = Worker(conn, options)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        with anyio.fail_after(10):
            while not looks:  # the first look, which finds no class
                await anyio.sleep(0.01)
            name = await ensure_class_consumer(conn.js, "default", SMALL.hardware_class(), 30)
            while name not in worker.bound:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert looks == 2  # the first, and the one the advisory asked for


async def test_scheduler_hears_new_events_while_it_blocks_many_jobs(
    conn: Connection, tmp_path: Path
) -> None:
    waiting = 20_000
    big = workflow(("root", "true", ()), *((f"w{i}", "true", (0,)) for i in range(waiting)))
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, lease_s=30).run)
        first = await submit_workflow(conn, big, workdir=str(tmp_path))
        store = EventStore(conn.js, conn.pipeline)
        with anyio.fail_after(30):  # the scheduler has begun blocking the waiting jobs
            while not isinstance(
                getattr(await store.last(job_subjects(first, 1)), "event", None), JobBlocked
            ):
                await anyio.sleep(0.005)
        second = await submit_workflow(
            conn, workflow(("alone", "true", ()), name="small"), workdir=str(tmp_path)
        )
        with anyio.fail_after(60):
            while len(blocked := await _stored(conn, first, "JobBlocked")) < waiting:
                await anyio.sleep(0.1)
        tg.cancel_scope.cancel()
    (ready,) = await _stored(conn, second, "JobReady")
    # Before: the small workflow's job was made ready after all 20,000 were blocked.
    assert ready < max(blocked)


async def _stored(conn: Connection, wf: str, kind: str) -> list[int]:
    """Stream sequences of one workflow's events of one type."""
    return [
        stored.seq
        async for stored in read_until_caught_up(conn.js, workflow_filter(wf))
        if type(stored.event).__name__ == kind
    ]
