"""An open NATS connection with its JetStream context and pipelined publisher."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import nats
from nats.aio.client import Client as NATS
from nats.errors import ConnectionClosedError, NoRespondersError, NoServersError
from nats.js import JetStreamContext

from jobstream.errors import ServerError
from jobstream.streams.pipeline import Pipeline
from jobstream.streams.repository import JobRepository
from jobstream.streams.setup import allow_atomic, ensure_streams
from jobstream.streams.store import EventStore
from jobstream.streams.subjects import EVENTS_STREAM
from jobstream.streams.urls import public


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


class _LoginRefused(Exception):
    pass


class _Errors:
    """nats-py reports connection errors through a callback and retries them. Once
    connected they are retried (a restarted server resumes the work); before, a refused
    login ends the attempt (raised from the callback, which nats-py awaits in its
    connect loop), since trying it again forever would only hang the command."""

    def __init__(self) -> None:
        self.connected = False

    async def report(self, exc: Exception) -> None:
        if not self.connected and "authorization violation" in str(exc).lower():
            raise _LoginRefused(str(exc))


@contextlib.asynccontextmanager
async def open_connection(url: str, name: str = "jobstream") -> AsyncIterator[Connection]:
    """Connect, make sure the streams exist, and close on exit.

    Once connected, a lost server is retried forever (a restarted server resumes the
    work); an address that does not accept connections at all fails at once.
    """
    if not await reachable(url):
        raise ServerError(f"cannot reach NATS at {public(url)}: nothing accepts connections there")
    errors = _Errors()
    try:
        nc = await nats.connect(
            url,
            name=name,
            connect_timeout=5,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=errors.report,
            allow_reconnect=True,
        )
    except (NoServersError, OSError, TimeoutError) as exc:
        raise ServerError(f"cannot reach NATS at {public(url)}: {exc}") from exc
    except _LoginRefused:
        raise ServerError(
            f"NATS at {public(url)} refused the login: give the server's credentials "
            "(its STATE_DIR/credentials.json) as JOBSTREAM_CREDS or the creds setting"
        ) from None
    errors.connected = True
    conn = Connection(nc, url)
    conn.pipeline.start()
    try:
        try:
            await ensure_streams(conn.js)
            conn.store.atomic = await allow_atomic(nc, EVENTS_STREAM)
        except (TimeoutError, NoRespondersError, ConnectionClosedError) as exc:  # it went away
            raise ServerError(
                f"NATS at {public(url)} stopped answering while its streams were set up "
                f"({exc.__class__.__name__}: {exc}): is its nats-server still running?"
            ) from exc
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
