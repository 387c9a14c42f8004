"""The long-running processes: ``jobstream server``, ``projector`` and ``worker``.

Each runs until SIGTERM or SIGINT, which cancels it cleanly (workers terminate and
record their running jobs; the embedded nats-server flushes its store). Scheduler and
projector run supervised: a transient failure restarts them from the log.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable

import anyio

from jobstream.config import Settings
from jobstream.host.connect import connect
from jobstream.host.embedded import embedded_server, forget_server, write_server_file
from jobstream.host.supervise import supervised
from jobstream.projections.service import Projector
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import open_connection
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

Say = Callable[[str], None]


async def stop_on_signal(scope: anyio.CancelScope) -> None:
    """SIGTERM/SIGINT end the process cleanly (the server flushes its store)."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def serve(settings: Settings, port: int, say: Say) -> None:
    """The embedded nats-server (unless the settings name a URL), scheduler and
    projector, until stopped; other commands in this directory find it."""
    async with contextlib.AsyncExitStack() as stack:
        url = settings.nats_url
        if url is None:
            await anyio.Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
            url = await stack.enter_async_context(embedded_server(settings.state_dir, port))
            write_server_file(settings.state_dir, url)
            stack.callback(forget_server, settings.state_dir)
        conn = await stack.enter_async_context(open_connection(url, "jobstream-server"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_on_signal, tg.cancel_scope)
            await tg.start(supervised, "scheduler", lambda: Scheduler(conn, settings.lease_s))
            await tg.start(
                supervised,
                "projector",
                lambda: Projector.of(conn, settings),
            )
            say(f"jobstream server ready at {url} (state: {settings.state_dir})")
            say(f"workers: jobstream worker --nats-url {url}")


async def project(settings: Settings, say: Say) -> None:
    """A projector on the configured server, until stopped."""
    async with (
        connect(settings, embedded=False, name="jobstream-projector") as conn,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(stop_on_signal, tg.cancel_scope)
        await tg.start(
            supervised,
            "projector",
            lambda: Projector.of(conn, settings),
        )
        say(f"projector writing {settings.db_path()}; answering `jobstream sql`")


async def work(settings: Settings, options: WorkerOptions, say: Say) -> None:
    """One worker on the configured server, until stopped, idle or out of walltime."""
    async with connect(settings, embedded=False, name=f"worker-{options.worker_id}") as conn:
        worker = Worker(conn, options)
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_on_signal, tg.cancel_scope)
            await worker.run()
            tg.cancel_scope.cancel()
        say(f"worker {worker.id} stopped ({worker.stop_reason}): {worker.jobs_run} jobs run")
