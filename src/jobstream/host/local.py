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

from jobstream.config import Settings
from jobstream.errors import ServerError
from jobstream.host import statedir
from jobstream.host.connect import hosted
from jobstream.host.embedded import EmbeddedServer
from jobstream.model import Resources, WorkflowDef
from jobstream.ops.check import require_fit
from jobstream.ops.submit import submit_workflow
from jobstream.projections.records import WorkflowStatus
from jobstream.projections.service import Projector
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection
from jobstream.streams.subjects import EVENTS_STREAM
from jobstream.views.status import follow, with_problems
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

SETTLE_TIMEOUT_S = 10.0


@dataclass
class RunOutcome:
    wf: str
    url: str
    summary: WorkflowStatus


def local_worker(settings: Settings, workflow: WorkflowDef, capacity: Resources) -> WorkerOptions:
    """The worker of ``jobstream run``: every pool the workflow uses, never idle-stopped
    (it stops with the workflow), its logs in the state directory."""
    return WorkerOptions(
        capacity=capacity,
        pools=tuple(sorted({job.pool for job in workflow.jobs} | {settings.pool})),
        lease_s=settings.lease_s,
        log_dir=(settings.state_dir / "logs").resolve(),
    )


@dataclass(frozen=True)
class Hooks:
    """What a local run tells its caller as it goes."""

    on_submitted: Callable[[str, str], None] | None = None  # (workflow id, server URL)
    on_update: Callable[[WorkflowStatus], None] | None = None  # each change of counts


async def run_local(
    settings: Settings,
    workflow: WorkflowDef,
    worker: WorkerOptions,
    *,
    services: bool | None = None,
    hooks: Hooks = Hooks(),
) -> RunOutcome:
    """Submit and run a workflow to its end with a local worker, on the server the
    settings name (an embedded one if none, supervised); see :func:`run_on`."""
    require_fit(workflow, worker.capacity)
    found = statedir.discover(settings.state_dir)
    if settings.nats_url is None and found is not None and found.kind != statedir.SERVER:
        raise ServerError(
            f"{found.describe()} is using {settings.state_dir}: wait for it to end, "
            "or use another --state-dir"
        )
    async with hosted(settings, embedded_ok=True, name="jobstream-run") as (conn, server):
        return await run_on(
            conn, settings, workflow, worker, services=services, hooks=hooks, server=server
        )


async def run_on(
    conn: Connection,
    settings: Settings,
    workflow: WorkflowDef,
    worker: WorkerOptions,
    *,
    services: bool | None = None,
    hooks: Hooks = Hooks(),
    server: EmbeddedServer | None = None,
) -> RunOutcome:
    """Submit and run a workflow to its end with a local worker on ``conn``.

    ``services=None`` runs a scheduler and a projector in this process unless this
    directory's ``jobstream server`` (which runs both) is up. ``server``: the embedded
    server this process started, supervised until the run ends.
    """
    require_fit(workflow, worker.capacity)
    if services is None:
        found = statedir.discover(settings.state_dir)
        services = settings.nats_url is not None or found is None or found.kind != statedir.SERVER
    projector: Projector | None = None
    async with anyio.create_task_group() as tg:
        if server is not None:
            tg.start_soon(server.supervise)
        if services:
            projector = Projector.of(conn, settings)
            await tg.start(Scheduler(conn, settings.lease_s).run)
            await tg.start(projector.run)
        wf = await submit_workflow(conn, workflow, workdir=os.getcwd())
        if hooks.on_submitted:
            hooks.on_submitted(wf, conn.url)
        async with anyio.create_task_group() as workers:
            await workers.start(Worker(conn, worker).run)
            record = await follow(conn, wf, hooks.on_update)
            summary = await with_problems(conn, settings, record)
            workers.cancel_scope.cancel()  # the worker records WorkerStopped
        if projector is not None:
            # Leave the read models complete: everything in the log is committed.
            last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq
            with anyio.move_on_after(SETTLE_TIMEOUT_S):
                await projector.caught_up(last)
        tg.cancel_scope.cancel()
    return RunOutcome(wf, conn.url, summary)
