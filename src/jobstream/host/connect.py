"""Connect the way the settings say: the configured URL, the server recorded in the state
directory (a ``jobstream server`` or ``run`` there), or, where the command allows it, an
embedded server of its own on that state directory."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from typing import NamedTuple

import anyio

from jobstream.config import Settings
from jobstream.errors import ConfigError, ServerError
from jobstream.host import credentials, statedir, tls
from jobstream.host.embedded import EmbeddedServer, embedded
from jobstream.streams.connection import Connection, open_connection
from jobstream.streams.urls import with_user

RECORD_WAIT_S = 5.0  # how long to wait for the record of an owner that is starting
POLL_S = 0.05

log = logging.getLogger(__name__)


class Hosted(NamedTuple):
    """A connection, and the embedded server it runs on if this process started one."""

    conn: Connection
    server: EmbeddedServer | None


@contextlib.asynccontextmanager
async def hosted(
    settings: Settings, *, embedded_ok: bool, name: str = "jobstream"
) -> AsyncIterator[Hosted]:
    """Connect the way the settings say (a URL set, else the one the credentials file
    names, else the state directory's server); start an embedded server only if
    ``embedded_ok`` and no server is recorded in the state directory (``name``, less
    its ``jobstream-`` prefix, is what the record calls this process)."""
    url = server_url(settings)
    if url is None and not embedded_ok:
        raise ServerError(
            "no NATS server: start one with `jobstream server` in this directory, "
            "or set JOBSTREAM_NATS_URL / --nats-url"
        )
    if url is None:
        async with contextlib.AsyncExitStack() as stack:
            kind = name.removeprefix("jobstream-")
            try:
                started = await stack.enter_async_context(
                    embedded(settings.state_dir, kind=kind, sync=settings.sync)
                )
            except ServerError:
                url = await _record_of_starting_owner(settings)  # it won the race to start
                if url is None:
                    raise
            else:
                conn = await stack.enter_async_context(
                    open_connection(
                        started.dial_url,
                        name,
                        upgrade=log.warning,
                        tls=tls_of(settings),
                        replicas=settings.replicas,
                    )
                )
                yield Hosted(conn, started)
                return
    dial = logged_in(url, settings)
    async with open_connection(
        dial, name, tls=tls_of(settings), replicas=settings.replicas
    ) as conn:
        yield Hosted(conn, None)


def tls_of(settings: Settings) -> ssl.SSLContext | None:
    """How a TLS server is verified: the ``tls_ca`` file, else the CA the credentials
    file carries, else the state directory's (None: no CA known; a tls:// URL is then
    verified against the system's CAs)."""
    if settings.tls_ca is not None:
        try:
            return tls.context(settings.tls_ca.read_text())
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{settings.tls_ca}: not a CA certificate to use: {exc}") from None
    ca = credentials.ca_of(settings.creds)
    if ca is not None:
        return tls.context(ca)
    mine = settings.state_dir / tls.TLS_DIR / tls.CA_FILE
    return tls.context(mine.read_text()) if mine.exists() else None


def server_url(settings: Settings) -> str | None:
    """The server the settings name: the URL set, else the one the credentials file
    names, else the state directory's recorded server."""
    return settings.nats_url or credentials.url_of(settings.creds) or _recorded(settings)


def submitter_url(settings: Settings) -> str:
    """Where a submitter's commands go, logged in (:func:`server_url`)."""
    url = server_url(settings)
    if url is None:
        raise ServerError(
            "no NATS server: give its URL with --nats-url (or JOBSTREAM_NATS_URL) next to "
            "your credentials"
        )
    return logged_in(url, settings)


def logged_in(url: str, settings: Settings) -> str:
    """``url`` with the credentials the settings give (the ``creds`` file, else the state
    directory's), if any."""
    found = credentials.find(settings.creds, settings.state_dir)
    return with_user(url, *found) if found else url


@contextlib.asynccontextmanager
async def connect(
    settings: Settings, *, embedded: bool, name: str = "jobstream"
) -> AsyncIterator[Connection]:
    """Like :func:`hosted`, the connection only."""
    async with hosted(settings, embedded_ok=embedded, name=name) as found:
        yield found.conn


def _recorded(settings: Settings) -> str | None:
    found = statedir.discover(settings.state_dir)
    return found.url if found else None


async def _record_of_starting_owner(settings: Settings) -> str | None:
    """The URL the state directory's owner records within RECORD_WAIT_S (a file to poll:
    the owner is another process)."""
    for _ in range(int(RECORD_WAIT_S / POLL_S)):
        url = _recorded(settings)
        if url is not None:
            return url
        await anyio.sleep(POLL_S)
    return None
