"""An open NATS connection with its JetStream context and pipelined publisher."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import nats
from nats.aio.client import Client as NATS
from nats.errors import NoServersError
from nats.js import JetStreamContext

from jobstream.errors import ServerError
from jobstream.streams.pipeline import Pipeline
from jobstream.streams.repository import JobRepository
from jobstream.streams.setup import allow_atomic, ensure_streams
from jobstream.streams.store import EventStore
from jobstream.streams.subjects import EVENTS_STREAM


async def reachable(url: str) -> bool:
    """True when the server's address accepts a TCP connection."""
    target = url.split("://", 1)[-1].split(",", 1)[0].rsplit("@", 1)[-1]
    host, _, port = target.rpartition(":")
    try:
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp(host.strip("[]") or "127.0.0.1", int(port or 4222))
    except (OSError, TimeoutError, ValueError):
        return False
    await stream.aclose()
    return True


class Connection:
    """An open NATS connection: its JetStream context, the pipelined publisher, the
    event store and job repository over them, and the URL it reached."""

    def __init__(self, nc: NATS, url: str) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=10.0)
        self.pipeline = Pipeline(nc)
        self.store = EventStore(self.js, self.pipeline)
        self.jobs = JobRepository(self.store)
        self.url = url


async def _quiet(exc: Exception) -> None:
    """nats-py reports reconnect errors through a callback; they are retried, not fatal."""


@contextlib.asynccontextmanager
async def open_connection(url: str, name: str = "jobstream") -> AsyncIterator[Connection]:
    """Connect, make sure the streams exist, and close on exit.

    Once connected, a lost server is retried forever (a restarted server resumes the
    work); an address that does not accept connections at all fails at once.
    """
    if not await reachable(url):
        raise ServerError(f"cannot reach NATS at {url}: nothing accepts connections there")
    try:
        nc = await nats.connect(
            url,
            name=name,
            connect_timeout=5,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=_quiet,
            allow_reconnect=True,
        )
    except (NoServersError, OSError, TimeoutError) as exc:
        raise ServerError(f"cannot reach NATS at {url}: {exc}") from exc
    conn = Connection(nc, url)
    conn.pipeline.start()
    try:
        await ensure_streams(conn.js)
        conn.store.atomic = await allow_atomic(nc, EVENTS_STREAM)
        yield conn
    finally:
        # Every publish that matters was acknowledged; flush the fire-and-forget ones
        # (message acks) and close. drain() would wait up to 30 s on idle subscriptions.
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            with contextlib.suppress(Exception):
                await conn.pipeline.close()
                await nc.flush(timeout=2)
            # Closing while the server is gone (reconnecting) makes nats-py write its
            # pending buffer to the dead transport, which uvloop refuses; it is closed.
            with contextlib.suppress(RuntimeError, OSError):
                await nc.close()
