"""Connect the way the settings say: the configured URL, the ``jobstream server`` found in
the state directory, or (where the command allows it) a fresh embedded server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from jobstream.config import Settings
from jobstream.errors import ServerError
from jobstream.host.embedded import discover_url, embedded_server
from jobstream.streams.connection import Connection, open_connection


@contextlib.asynccontextmanager
async def connect(
    settings: Settings, *, embedded: bool, name: str = "jobstream"
) -> AsyncIterator[Connection]:
    """Connect the way the settings say; start an embedded server only if ``embedded``."""
    url = settings.nats_url or discover_url(settings.state_dir)
    if url is not None:
        async with open_connection(url, name) as conn:
            yield conn
        return
    if not embedded:
        raise ServerError(
            "no NATS server: start one with `jobstream server` in this directory, "
            "or set JOBSTREAM_NATS_URL / --nats-url"
        )
    async with embedded_server(settings.state_dir) as url, open_connection(url, name) as conn:
        yield conn
