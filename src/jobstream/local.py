"""``jobstream run``: scheduler, projector, worker and progress in one process.

The same Scheduler, Projector and Worker classes run as separate processes under
``jobstream server`` / ``jobstream projector`` / ``jobstream worker``; here they are tasks of
one task group that is cancelled once the workflow's KV record says it has finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from jobstream.access import db_path, follow, summarize
from jobstream.config import Settings
from jobstream.embedded import discover_url
from jobstream.model import WorkflowDef
from jobstream.progress import WorkflowStatus
from jobstream.projections.kv import WorkflowRecord
from jobstream.projections.service import Projector
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection, connect
from jobstream.streams.reader import read_batches
from jobstream.streams.subjects import EVENTS_STREAM, workflow_filter
from jobstream.submit import submit_workflow
from jobstream.summary import Summary
from jobstream.workers.service import Worker, WorkerOptions

SETTLE_TIMEOUT_S = 10.0


@dataclass
class RunOutcome:
    wf: str
    url: str
    summary: Summary


async def wait_in_log(conn: Connection, wf: str) -> WorkflowStatus:
    """Fold the workflow's events until WorkflowCompleted (no projector needed)."""
    status = WorkflowStatus(wf)
    async for batch in read_batches(conn.js, workflow_filter(wf), poll_s=0.5):
        for stored in batch.events:
            status.apply(stored.event)
        if status.finished:
            break
    return status


async def run_local(
    settings: Settings,
    workflow: WorkflowDef,
    worker: WorkerOptions,
    *,
    services: bool | None = None,
    on_submitted: Callable[[str, str], None] | None = None,
    on_update: Callable[[WorkflowRecord], None] | None = None,
) -> RunOutcome:
    """Submit and run a workflow to its end with a local worker.

    ``services=None`` runs a scheduler and a projector in this process unless this
    directory's ``jobstream server`` (which runs both) is up.
    """
    if services is None:
        services = settings.nats_url is not None or discover_url(settings.state_dir) is None
    projector: Projector | None = None
    async with connect(settings, embedded=True, name="jobstream-run") as conn:
        async with anyio.create_task_group() as tg:
            if services:
                projector = Projector(conn, db_path(settings))
                await tg.start(Scheduler(conn, settings.lease_s).run)
                await tg.start(projector.run)
            wf = await submit_workflow(conn, workflow, workdir=os.getcwd())
            if on_submitted:
                on_submitted(wf, conn.url)
            async with anyio.create_task_group() as workers:
                await workers.start(Worker(conn, worker).run)
                record = await follow(conn, wf, on_update)
                summary = await summarize(conn, settings, record)
                workers.cancel_scope.cancel()  # the worker records WorkerStopped
            if projector is not None:
                # Leave the read models complete: everything in the log is committed.
                last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq
                with anyio.move_on_after(SETTLE_TIMEOUT_S):
                    await projector.caught_up(last)
            tg.cancel_scope.cancel()
        return RunOutcome(wf, conn.url, summary)
