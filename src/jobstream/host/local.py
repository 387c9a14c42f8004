"""``jobstream run``: scheduler, projector, worker and progress in one process.

The same Scheduler, Projector and Worker classes run as separate processes under
``jobstream server`` / ``jobstream projector`` / ``jobstream worker``; here they are tasks of
one task group that is cancelled once the workflow's KV record says it has finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from jobstream.config import Settings
from jobstream.errors import JobstreamError, ServerError, first_user_error
from jobstream.host import statedir
from jobstream.host.connect import hosted
from jobstream.host.embedded import EmbeddedServer
from jobstream.model import Resources, WorkflowDef
from jobstream.ops.check import require_fit
from jobstream.ops.submit import submit_workflow
from jobstream.projections.records import WorkflowStatus
from jobstream.projections.service import Projector
from jobstream.scheduler.service import Scheduler
from jobstream.scheduler.state import WorkflowTrack
from jobstream.streams.connection import Connection
from jobstream.streams.subjects import EVENTS_STREAM
from jobstream.streams.urls import public
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
    on_resumed: Callable[[str], None] | None = None  # earlier workflows that run too


class LeftOver(JobstreamError):
    """Earlier runs left workflows unfinished in this state directory."""

    def __init__(self, left: list[WorkflowTrack], state_dir: Path) -> None:
        first = left[0].wf
        super().__init__(
            f"{describe_left(left)} left unfinished in {state_dir}: `jobstream run --resume "
            f"SPEC` runs {'them' if len(left) > 1 else 'it'} too, `jobstream cancel {first}` "
            "drops it, or use another --state-dir"
        )


def _check_left(
    left: list[WorkflowTrack], resume: bool, state_dir: Path, hooks: Hooks
) -> list[WorkflowTrack]:
    """The earlier workflows to run to their end too (LeftOver unless ``resume``)."""
    if left and not resume:
        raise LeftOver(left, state_dir)
    if left and hooks.on_resumed:
        hooks.on_resumed(describe_left(left))
    return left


def describe_left(left: list[WorkflowTrack]) -> str:
    """``2 workflows (sweep 1m9…: 37 of 100 jobs left; …)``."""
    shown = "; ".join(f"{t.name} {t.wf}: {t.jobs_left()} of {t.job_count} jobs left" for t in left)
    return f"{len(left)} workflow{'s' if len(left) > 1 else ''} ({shown})"


async def run_local(
    settings: Settings,
    workflow: WorkflowDef,
    worker: WorkerOptions,
    *,
    services: bool | None = None,
    hooks: Hooks = Hooks(),
    resume: bool = False,
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
            conn,
            settings,
            workflow,
            worker,
            services=services,
            hooks=hooks,
            server=server,
            resume=resume,
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
    resume: bool = False,
) -> RunOutcome:
    """Submit and run a workflow to its end with a local worker on ``conn``.

    ``services=None`` runs a scheduler and a projector in this process unless this
    directory's ``jobstream server`` (which runs both) is up. ``server``: the embedded
    server this process started, supervised until the run ends. Workflows an earlier
    run left unfinished would run too, on the same worker: they are refused
    (:class:`LeftOver`) unless ``resume``; then ``hooks.on_resumed`` hears of them.
    """
    require_fit(workflow, worker.capacity)
    if services is None:
        found = statedir.discover(settings.state_dir)
        services = settings.nats_url is not None or found is None or found.kind != statedir.SERVER
    projector: Projector | None = None
    left: list[WorkflowTrack] = []
    try:
        async with anyio.create_task_group() as tg:
            if server is not None:
                tg.start_soon(server.supervise)
            if services:
                projector = Projector.of(conn, settings)
                scheduler = Scheduler(conn, settings.lease_s)
                await tg.start(scheduler.run)
                left = _check_left(scheduler.state.unfinished(), resume, settings.state_dir, hooks)
                await tg.start(projector.run)
            wf = await submit_workflow(conn, workflow, workdir=os.getcwd())
            if hooks.on_submitted:
                hooks.on_submitted(wf, public(conn.url))
            async with anyio.create_task_group() as workers:
                await workers.start(Worker(conn, worker).run)
                record = await follow(conn, wf, hooks.on_update)
                summary = await with_problems(conn, settings, record)
                for earlier in left:  # resumed: they end too
                    await follow(conn, earlier.wf)
                workers.cancel_scope.cancel()  # the worker records WorkerStopped
            if projector is not None:
                # Leave the read models complete: everything in the log is committed.
                last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq
                with anyio.move_on_after(SETTLE_TIMEOUT_S):
                    await projector.caught_up(last)
            tg.cancel_scope.cancel()
    except* JobstreamError as group:  # a user error, not a crash: itself, not a group
        raise first_user_error(group) or group from None
    return RunOutcome(wf, public(conn.url), summary)
