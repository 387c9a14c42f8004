"""An open NATS connection with its JetStream context and pipelined publisher."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio
import nats
from nats.aio.client import Client as NATS
from nats.errors import ConnectionClosedError, NoRespondersError, NoServersError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError

from jobstream.errors import ServerError
from jobstream.streams.pipeline import Pipeline
from jobstream.streams.pull import reachable
from jobstream.streams.repository import JobRepository
from jobstream.streams.setup import allow_atomic, ensure_streams
from jobstream.streams.store import EventStore
from jobstream.streams.subjects import EVENTS_STREAM, inbox_prefix
from jobstream.streams.urls import Endpoint, login_of, public, servers, user_of

log = logging.getLogger(__name__)
T = TypeVar("T")
SETUP_PATIENCE_S = 30.0
SETUP_RETRY_S = 0.5


class Connection:
    """An open NATS connection: its JetStream context, the pipelined publisher, the
    event store and job repository over them, and the URL it reached."""

    def __init__(
        self, nc: NATS, url: str, tls: ssl.SSLContext | None = None, replicas: int = 1
    ) -> None:
        self.nc = nc
        self.replicas = replicas  # of what this connection creates (a NATS cluster's copies)
        self.js: JetStreamContext = nc.jetstream(timeout=10.0)
        self.pipeline = Pipeline(nc)
        self.store = EventStore(self.js, self.pipeline)
        self.jobs = JobRepository(self.store)
        self.url = url
        self.endpoint = Endpoint(url, tls)  # where the bare-socket readers go


class _LoginRefused(Exception):
    pass


class _Errors:
    """nats-py reports connection errors through a callback and retries them. Once
    connected they are retried (a restarted server resumes the work); before, a refused
    login ends the attempt (raised from the callback, which nats-py awaits in its
    connect loop), since trying it again forever would only hang the command."""

    def __init__(self) -> None:
        self.connected = False
        self.refusals: set[str] = set()

    async def report(self, exc: Exception) -> None:
        text = str(exc)
        refused_login = "authorization violation" in text.lower()
        if refused_login and not self.connected:
            raise _LoginRefused(text)
        if refused_login and text not in self.refusals:  # revoked while connected
            self.refusals.add(text)
            log.error("NATS refuses this login now (revoked?); trying again until it takes it")
        elif "permissions violation" in text.lower() and text not in self.refusals:
            self.refusals.add(text)  # once each: what this identity may not do
            log.warning("the NATS server refused: %s", text)


async def dial(url: str, name: str, tls: ssl.SSLContext | None = None) -> NATS:
    """A logged-in NATS connection (replies under the user's own inbox prefix, which is
    what a role may subscribe to). Once connected, a lost server is retried forever (a
    restarted server resumes the work); an address that does not accept connections at
    all, or a refused login, fails at once with a one-line ServerError."""
    try:
        if not await reachable(Endpoint(url, tls)):
            raise ServerError(
                f"cannot reach NATS at {public(url)}: nothing accepts connections there"
            )
    except ssl.SSLError as exc:
        raise ServerError(
            f"NATS at {public(url)}: TLS failed ({exc.reason or exc}): give the CA that signed "
            "its certificate as --tls-ca / JOBSTREAM_TLS_CA (a server's STATE_DIR/tls/ca.pem)"
        ) from None
    errors = _Errors()
    try:
        nc = await nats.connect(
            servers(public(url)),
            **login_of(url),
            name=name,
            connect_timeout=5,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=errors.report,
            allow_reconnect=True,
            inbox_prefix=inbox_prefix(user_of(url)),
            tls=tls,
        )
    except (NoServersError, OSError, TimeoutError) as exc:
        raise ServerError(f"cannot reach NATS at {public(url)}: {exc}") from exc
    except _LoginRefused:
        raise ServerError(
            f"NATS at {public(url)} refused the login: give the server's credentials "
            "(its STATE_DIR/credentials.json, or a file from `jobstream users add`) as "
            "--creds, JOBSTREAM_CREDS or the creds setting"
        ) from None
    errors.connected = True
    return nc


async def hang_up(nc: NATS) -> None:
    """Close, bounded, whatever state the server is in."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
        with contextlib.suppress(Exception):
            await nc.flush(timeout=2)
        # Closing while the server is gone (reconnecting) makes nats-py write its
        # pending buffer to the dead transport, which uvloop refuses; it is closed.
        with contextlib.suppress(RuntimeError, OSError):
            await nc.close()


async def _set_up(conn: Connection, upgrade: Callable[[str], None] | None) -> None:
    """The streams (:func:`patiently`)."""

    async def set_up() -> None:
        await ensure_streams(conn.nc, conn.js, upgrade, conn.replicas)
        conn.store.atomic = await allow_atomic(conn.nc, EVENTS_STREAM)

    await patiently(conn, "its streams were set up", set_up)


async def patiently(conn: Connection, what: str, step: Callable[[], Awaitable[T]]) -> T:
    """``step()``, tried again while the server is away (a restarted nats-server comes
    back within seconds, and the connection with it) or a cluster has not yet elected
    the leaders it needs (a stream just made has none for a moment), for up to
    SETUP_PATIENCE_S; then a one-line ServerError saying ``what`` was going on."""
    deadline = anyio.current_time() + SETUP_PATIENCE_S
    while True:
        try:
            return await step()
        except (
            TimeoutError,
            NoRespondersError,
            NoStreamResponseError,
            ConnectionClosedError,
            APIError,
        ) as exc:
            if isinstance(exc, APIError) and not _cluster_not_ready(exc):
                raise
            if conn.nc.is_closed or anyio.current_time() > deadline:
                raise ServerError(
                    f"NATS at {public(conn.url)} stopped answering while {what} "
                    f"({exc.__class__.__name__}: {exc}): is its nats-server still running?"
                ) from exc
            log.warning("NATS did not answer while %s; trying again", what)
            await anyio.sleep(SETUP_RETRY_S)


def _cluster_not_ready(exc: APIError) -> bool:
    """A cluster that has not elected its leaders yet, or not heard from enough nodes
    to place a stream's replicas (503; 10005 no suitable peers, 10008 unavailable)."""
    return exc.code == 503 or exc.err_code in (10005, 10008)


@contextlib.asynccontextmanager
async def open_connection(
    url: str,
    name: str = "jobstream",
    *,
    upgrade: Callable[[str], None] | None = None,
    tls: ssl.SSLContext | None = None,
    replicas: int = 1,
) -> AsyncIterator[Connection]:
    """Connect (:func:`dial`), make sure the streams exist, and close on exit. The
    server's owner gives ``upgrade`` (how to tell its user): a log in an older layout is
    upgraded, not refused."""
    nc = await dial(url, name, tls)
    conn = Connection(nc, url, tls, replicas)
    conn.pipeline.start()
    try:
        await _set_up(conn, upgrade)
        yield conn
    finally:
        # Every publish that matters was acknowledged; flush the fire-and-forget ones
        # (message acks) and close. drain() would wait up to 30 s on idle subscriptions.
        with anyio.CancelScope(shield=True), anyio.move_on_after(5), contextlib.suppress(Exception):
            await conn.pipeline.close()
        await hang_up(nc)
