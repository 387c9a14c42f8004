"""``jobstream run``: scheduler, worker and progress in one process, on one event loop.

The same Scheduler and Worker classes run as separate processes under ``jobstream
server`` / ``jobstream worker``; here they are tasks of one task group that is cancelled
as soon as the workflow's WorkflowCompleted event is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from jobstream.config import Settings
from jobstream.embedded import discover_url
from jobstream.model import WorkflowDef
from jobstream.progress import WorkflowStatus
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection, connect
from jobstream.streams.reader import read_batches
from jobstream.streams.subjects import workflow_filter
from jobstream.submit import submit_workflow
from jobstream.workers.service import Worker, WorkerOptions


@dataclass
class RunOutcome:
    wf: str
    url: str
    status: WorkflowStatus


async def follow_workflow(
    conn: Connection, wf: str, on_update: Callable[[WorkflowStatus], None] | None = None
) -> WorkflowStatus:
    """Fold the workflow's events until WorkflowCompleted; report after every batch."""
    status = WorkflowStatus(wf)
    async for batch in read_batches(conn.js, workflow_filter(wf), poll_s=0.5):
        for stored in batch.events:
            status.apply(stored.event)
        if on_update:
            on_update(status)
        if status.finished:
            break
    return status


async def run_local(
    settings: Settings,
    workflow: WorkflowDef,
    worker: WorkerOptions,
    *,
    scheduler: bool | None = None,
    on_submitted: Callable[[str, str], None] | None = None,
    on_update: Callable[[WorkflowStatus], None] | None = None,
) -> RunOutcome:
    """Submit and run a workflow to its end with local workers.

    ``scheduler=None`` runs an in-process scheduler unless this directory's
    ``jobstream server`` (which has one) is running.
    """
    if scheduler is None:
        scheduler = settings.nats_url is not None or discover_url(settings.state_dir) is None
    async with connect(settings, embedded=True, name="jobstream-run") as conn:
        async with anyio.create_task_group() as tg:
            if scheduler:
                await tg.start(Scheduler(conn, settings.lease_s).run)
            wf = await submit_workflow(conn, workflow, workdir=os.getcwd())
            if on_submitted:
                on_submitted(wf, conn.url)
            await tg.start(Worker(conn, worker).run)
            status = await follow_workflow(conn, wf, on_update)
            tg.cancel_scope.cancel()
        return RunOutcome(wf, conn.url, status)
