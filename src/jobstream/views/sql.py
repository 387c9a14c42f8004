"""SQL on the read models: through the running projector, from its file when none runs,
or as of a point in the past (a replay of the log into a throw-away database)."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path

import anyio
import duckdb
import pyarrow as pa

from jobstream.config import Settings
from jobstream.errors import ConfigError, JobstreamError
from jobstream.projections.duck import DuckStore
from jobstream.projections.guard import DEFAULT_LIMITS, QueryLimits, limits_of
from jobstream.projections.query import projector_available, remote_query
from jobstream.projections.service import replay_store
from jobstream.streams.connection import Connection

AsOf = tuple[int | None, float | None]  # (stream sequence, unix time): one of them is set


def _query_file(path: Path, sql: str, limits: QueryLimits) -> pa.Table:
    try:
        store = DuckStore(path, read_only=True, limits=limits)
    except duckdb.IOException as exc:
        raise JobstreamError(
            f"{path} is held by a projector that does not answer queries: {exc}"
        ) from exc
    try:
        return store.query(sql)
    finally:
        store.close()


async def run_sql(conn: Connection | None, settings: Settings, sql: str) -> pa.Table:
    """Ask the running projector; without one, read the DuckDB file directly."""
    if conn is not None and await projector_available(conn.nc):
        return await remote_query(conn.nc, sql)
    path = settings.db_path()
    if not await anyio.Path(path).exists():
        raise JobstreamError(
            f"no read models at {path}: run `jobstream projector` (or `jobstream server`), "
            "or build them with `jobstream rebuild`"
        )
    return await anyio.to_thread.run_sync(_query_file, path, sql, limits_of(settings))


def parse_as_of(value: str) -> AsOf:
    """A stream sequence (integer) or a time (ISO 8601, local time unless it has a zone)."""
    if value.isdigit():
        return int(value), None
    try:
        return None, datetime.fromisoformat(value).timestamp()
    except ValueError as exc:
        raise ConfigError(
            f"--as-of {value!r}: give a stream sequence (e.g. 1200) or a time "
            "(e.g. 2026-11-25T12:30:00)"
        ) from exc


async def as_of_query(
    conn: Connection, sql: str, upto: AsOf, limits: QueryLimits = DEFAULT_LIMITS
) -> pa.Table:
    """Replay the log up to a point into a throw-away database and ask it."""
    store = await anyio.to_thread.run_sync(functools.partial(DuckStore, ":memory:", limits=limits))
    try:
        await replay_store(conn, store, upto_seq=upto[0], upto_time=upto[1])
        return await anyio.to_thread.run_sync(store.query, sql)
    finally:
        store.close()


async def answer(conn: Connection, settings: Settings, sql: str, as_of: str | None) -> pa.Table:
    """``sql`` answered now, or as of a sequence or time (see :func:`parse_as_of`)."""
    if as_of:
        return await as_of_query(conn, sql, parse_as_of(as_of), limits_of(settings))
    return await run_sql(conn, settings, sql)
