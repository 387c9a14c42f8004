"""``jobstream server``: a long-running embedded nats-server, scheduler and projector."""

from __future__ import annotations

import contextlib
import signal
from typing import Annotated

import anyio
import typer

from jobstream.access import db_path
from jobstream.cli.common import NatsUrl, StateDir, err, guarded, run_async, settings_from
from jobstream.config import Settings
from jobstream.embedded import SERVER_FILE, embedded_server, write_server_file
from jobstream.projections.service import Projector
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import open_connection
from jobstream.supervise import supervised


async def stop_on_signal(scope: anyio.CancelScope) -> None:
    """SIGTERM/SIGINT end the process cleanly (the server flushes its store)."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def serve(settings: Settings, port: int) -> None:
    async with contextlib.AsyncExitStack() as stack:
        url = settings.nats_url
        if url is None:
            await anyio.Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
            url = await stack.enter_async_context(embedded_server(settings.state_dir, port))
            write_server_file(settings.state_dir, url)
            stack.callback((settings.state_dir / SERVER_FILE).unlink, missing_ok=True)
        conn = await stack.enter_async_context(open_connection(url, "jobstream-server"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_on_signal, tg.cancel_scope)
            await tg.start(supervised, "scheduler", lambda: Scheduler(conn, settings.lease_s))
            await tg.start(supervised, "projector", lambda: Projector(conn, db_path(settings)))
            err.print(f"jobstream server ready at {url} (state: {settings.state_dir})")
            err.print(f"workers: jobstream worker --nats-url {url}")


@guarded
def server(
    port: Annotated[int, typer.Option(help="port of the embedded server (-1: any free one)")] = -1,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
) -> None:
    """Run the embedded NATS server (unless --nats-url), scheduler and projector until stopped.

    Other commands started in the same directory find this server by itself.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    run_async(serve, settings, port)
