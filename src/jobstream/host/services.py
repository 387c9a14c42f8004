"""The long-running processes: ``jobstream server``, ``projector`` and ``worker``.

Each runs until SIGTERM or SIGINT, which cancels it cleanly (workers terminate and
record their running jobs; the embedded nats-server flushes its store). Scheduler and
projector run supervised: a transient failure restarts them from the log.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import signal
from collections.abc import AsyncIterator, Callable

import anyio
from anyio.abc import TaskGroup, TaskStatus
from nats.js.kv import KeyValue

from jobstream.config import Settings
from jobstream.errors import ServerError
from jobstream.gateway.service import Gateway
from jobstream.host import statedir
from jobstream.host.autoalloc import Keeper
from jobstream.host.connect import connect, logged_in, tls_of
from jobstream.host.credentials import CREDENTIALS_FILE
from jobstream.host.embedded import embedded
from jobstream.host.lease import (
    PROJECTOR,
    SLURM_WATCHER,
    Leased,
    Share,
    agree,
    ensure_leases,
    holder_id,
)
from jobstream.host.supervise import supervised
from jobstream.host.tls import ServerFiles
from jobstream.projections.service import Projector
from jobstream.scheduler.partition import PARTITIONS_KEY, Partition, partitions
from jobstream.scheduler.service import Scheduler
from jobstream.slurm.watch import SlurmWatcher
from jobstream.streams.connection import Connection, open_connection, patiently
from jobstream.streams.urls import public
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

Say = Callable[[str], None]
log = logging.getLogger(__name__)
OPEN_PATIENCE_S = 30.0
OPEN_RETRY_S = 0.5


async def _stop_on_signal(
    scope: anyio.CancelScope, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for _ in signals:
            scope.cancel()
            return


@contextlib.asynccontextmanager
async def stoppable() -> AsyncIterator[TaskGroup]:
    """A task group that SIGTERM and SIGINT cancel, from the moment it is entered: the
    process then ends cleanly (workers record their jobs, the server flushes its store).
    The body cancels it when it is done."""
    async with anyio.create_task_group() as tg:
        await tg.start(_stop_on_signal, tg.cancel_scope)
        yield tg


async def serve(
    settings: Settings,
    port: int | None,
    say: Say,
    projector: bool = True,
    tls: ServerFiles | None = None,
) -> None:
    """The embedded nats-server (unless the settings name a URL; with ``tls``, clients
    must use TLS), supervised, the scheduler, the submitter service and (unless it runs
    on its own) the projector, until stopped; other commands in this directory find
    them."""
    async with stoppable(), contextlib.AsyncExitStack() as stack:
        url, server = settings.nats_url, None
        if url is None:
            kind = statedir.SERVER
            server = await stack.enter_async_context(
                embedded(settings.state_dir, port, kind, settings.sync, tls)
            )
            url, dial = server.url, server.dial_url
        else:
            url, dial = public(url), logged_in(url, settings)
        async with anyio.create_task_group() as tg:
            if server is not None:  # from the start: it may die before we are connected
                tg.start_soon(server.supervise)
            opening = functools.partial(
                open_connection,
                dial,
                "jobstream-server",
                upgrade=say,
                tls=tls_of(settings),
                replicas=settings.replicas,
            )
            conn = await _opened(stack, opening, patient=server is not None)
            leases = await patiently(conn, "the leases were read", lambda: _leases(conn, settings))
            holder = holder_id()
            schedulers = Share(settings.partitions, holder)
            for part in partitions(settings.partitions):
                leased = _leased_scheduler(conn, settings, leases, part, holder, schedulers, say)
                await tg.start(supervised, part.lease_key(), leased)
            await tg.start(supervised, "submitter service", lambda: Gateway(conn, settings))
            if projector:
                await tg.start(
                    supervised, "projector", await _leased_projector(conn, settings, holder, say)
                )
            if shutil.which("squeue"):  # on a Slurm host: allocations' lives, and autoalloc
                leased_watcher = _leased_watcher(conn, settings, leases, holder, say)
                await tg.start(supervised, SLURM_WATCHER, leased_watcher)
            say(f"jobstream server ready at {url} (state: {settings.state_dir})")
            say(f"workers: jobstream worker --nats-url {url}")
            if server is not None:
                login = (settings.state_dir / CREDENTIALS_FILE).resolve()
                say(f"  (they log in with {login}: elsewhere, JOBSTREAM_CREDS=<a copy of it>)")


async def _opened(
    stack: contextlib.AsyncExitStack,
    opening: Callable[[], contextlib.AbstractAsyncContextManager[Connection]],
    *,
    patient: bool,
) -> Connection:
    """The server's connection; while its own nats-server is being started again (it
    died at start), tried again for up to OPEN_PATIENCE_S."""
    deadline = anyio.current_time() + OPEN_PATIENCE_S
    while True:
        try:
            return await stack.enter_async_context(opening())
        except ServerError as exc:
            if not patient or anyio.current_time() > deadline:
                raise
            log.warning("%s; trying again", exc)
            await anyio.sleep(OPEN_RETRY_S)


async def project(settings: Settings, say: Say) -> None:
    """A projector on the configured server, until stopped."""
    async with (
        stoppable(),
        connect(settings, embedded=False, name="jobstream-projector") as conn,
        anyio.create_task_group() as tg,
    ):
        await tg.start(
            supervised, "projector", await _leased_projector(conn, settings, holder_id(), say)
        )
        say(f"projector writing {settings.db_path()}; answering `jobstream sql` while active")


async def _leases(conn: Connection, settings: Settings) -> KeyValue:
    """The LEASES bucket, with this deployment's partition count agreed."""
    leases = await ensure_leases(conn.nc, conn.replicas)
    await agree(leases, PARTITIONS_KEY, str(settings.partitions), "partitions")
    return leases


def _leased_scheduler(
    conn: Connection,
    settings: Settings,
    leases: KeyValue,
    part: Partition,
    holder: str,
    share: Share,
    say: Say,
) -> Callable[[], Leased]:
    """One partition's scheduler, active while this process holds its lease."""
    key = part.lease_key()
    return lambda: Leased(
        leases, key, holder, lambda: Scheduler(conn, settings.lease_s, part), say, share
    )


def _leased_watcher(
    conn: Connection, settings: Settings, leases: KeyValue, holder: str, say: Say
) -> Callable[[], Leased]:
    """The Slurm allocations' watcher, with the autoalloc that spec actions turn on,
    active on one server (the others stand by)."""

    def watcher() -> SlurmWatcher:
        return Keeper(conn, settings, say=say).watcher()

    return lambda: Leased(leases, SLURM_WATCHER, holder, watcher, say)


async def _leased_projector(
    conn: Connection, settings: Settings, holder: str, say: Say
) -> Callable[[], Leased]:
    """The projector, active while this process holds its lease (a standby meanwhile)."""
    leases = await patiently(
        conn, "the leases were read", lambda: ensure_leases(conn.nc, conn.replicas)
    )
    return lambda: Leased(leases, PROJECTOR, holder, lambda: Projector.of(conn, settings), say)


async def work(settings: Settings, options: WorkerOptions, say: Say) -> None:
    """One worker on the configured server, until stopped, idle or out of walltime."""
    name = f"worker-{options.worker_id}"
    async with stoppable() as process, connect(settings, embedded=False, name=name) as conn:
        worker = Worker(conn, options)
        await worker.run()
        say(f"worker {worker.id} stopped ({worker.stop_reason}): {worker.jobs_run} jobs run")
        process.cancel_scope.cancel()
