"""A scheduler rebuilt from the log finishes the work of one that died, duplicating nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from jobstream.decide import Job, MakeReady, decide
from jobstream.events import JobReady
from jobstream.model import JobState, Resources
from jobstream.ops.submit import submit_workflow
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection
from jobstream.streams.store import EventStore
from jobstream.streams.subjects import WORK_STREAM, job_subjects
from jobstream.views.audit import wait_in_log
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

from .helpers import histories, types, workflow


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not await condition():
            await anyio.sleep(0.05)


async def test_restarted_scheduler_redispatches_without_duplicates(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = workflow(
        *((f"root{i}", f"echo {i} > r{i}", ()) for i in range(5)),
        ("join", "cat r0 r1 r2 r3 r4 > joined", (0, 1, 2, 3, 4)),
        ("orphan", "echo orphan > o", ()),
    )
    wf = await submit_workflow(conn, spec, workdir=os.getcwd())

    async def work_queued() -> bool:
        return (await conn.js.stream_info(WORK_STREAM)).state.messages >= 6

    # First scheduler: makes the roots ready and dispatches them, then "dies" (cancelled).
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, lease_s=5).run)
        await wait_for(work_queued)
        tg.cancel_scope.cancel()
    # A crash between JobReady and its WORK message: JobReady appended, nothing queued.
    found = await histories(conn, wf)
    assert types(found[6])[-1] == "JobReady"
    queued_before = (await conn.js.stream_info(WORK_STREAM)).state.messages
    assert queued_before == 6

    # Second scheduler replays; a worker runs everything.
    options = WorkerOptions(
        capacity=Resources(num_cpus=2, memory_mib=1024), log_dir=tmp_path / "logs"
    )
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, lease_s=5).run)
        assert (await conn.js.stream_info(WORK_STREAM)).state.messages == queued_before
        tg.start_soon(Worker(conn, options).run)
        with anyio.fail_after(30):
            status = await wait_in_log(conn, wf)
        tg.cancel_scope.cancel()
    assert status.succeeded()
    found = await histories(conn, wf)
    for n, events in found.items():
        assert types(events).count("JobReady") == 1, (n, types(events))
        assert types(events).count("JobCompleted") == 1, (n, types(events))
    assert (tmp_path / "joined").read_text() == "0\n1\n2\n3\n4\n"


async def test_ready_job_whose_dispatch_was_lost_is_dispatched(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = workflow(("only", "echo done > done.txt", ()))
    wf = await submit_workflow(conn, spec, workdir=os.getcwd())
    # The dead scheduler's last act: JobReady appended, WORK message never published.
    store = EventStore(conn.js, conn.pipeline)
    last = await store.last(job_subjects(wf, 0))
    assert last is not None
    job = Job(wf=wf, index=0, state=JobState.SUBMITTED, spec=spec.jobs[0])
    make_ready = MakeReady(
        at=time.time(),
        actor="scheduler",
        pool="default",
        hardware_class=spec.jobs[0].resources.hardware_class(),
    )
    (ready,) = decide(job, make_ready)
    assert isinstance(ready, JobReady)
    await store.append(ready, last.seq)
    assert (await conn.js.stream_info(WORK_STREAM)).state.messages == 0

    options = WorkerOptions(
        capacity=Resources(num_cpus=1, memory_mib=1024), log_dir=tmp_path / "logs"
    )
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, lease_s=5).run)
        tg.start_soon(Worker(conn, options).run)
        with anyio.fail_after(30):
            status = await wait_in_log(conn, wf)
        tg.cancel_scope.cancel()
    assert status.succeeded()
    assert (tmp_path / "done.txt").read_text() == "done\n"
