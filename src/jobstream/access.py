"""Reading the read models: SQL through the projector, or from its file when none runs,
and workflow summaries from the JOBS bucket."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import duckdb
import pyarrow as pa

from jobstream.config import Settings
from jobstream.errors import JobstreamError
from jobstream.projections.duck import DuckStore
from jobstream.projections.kv import (
    JobRecord,
    WorkflowRecord,
    watch_jobs,
    watch_workflow,
    workflow_records,
)
from jobstream.projections.query import QueryError, projector_available, remote_query
from jobstream.projections.service import DB_NAME
from jobstream.streams.connection import Connection
from jobstream.summary import Summary, problems_from_rows, problems_sql, summary_of


def db_path(settings: Settings) -> Path:
    return (settings.state_dir / DB_NAME).resolve()


def _query_file(path: Path, sql: str) -> pa.Table:
    try:
        store = DuckStore(path, read_only=True)
    except duckdb.IOException as exc:
        raise JobstreamError(
            f"{path} is held by a projector that does not answer queries: {exc}"
        ) from exc
    try:
        return store.query(sql)
    except duckdb.Error as exc:
        raise QueryError(" ".join(str(exc).split())) from exc
    finally:
        store.close()


async def run_sql(conn: Connection | None, settings: Settings, sql: str) -> pa.Table:
    """Ask the running projector; without one, read the DuckDB file directly."""
    if conn is not None and await projector_available(conn.nc):
        return await remote_query(conn.nc, sql)
    path = db_path(settings)
    if not await anyio.Path(path).exists():
        raise JobstreamError(
            f"no read models at {path}: run `jobstream projector` (or `jobstream server`), "
            "or build them with `jobstream rebuild`"
        )
    return await anyio.to_thread.run_sync(_query_file, path, sql)


async def summarize(conn: Connection, settings: Settings, record: WorkflowRecord) -> Summary:
    """Counts from KV; details of jobs that did not complete from the read models."""
    problems = []
    if record.counts.get("completed", 0) < record.job_count:
        table = await run_sql(conn, settings, problems_sql(record.wf))
        problems = problems_from_rows(table.to_pylist())
    return summary_of(record, problems)


async def summaries(conn: Connection, settings: Settings, wf: str | None) -> list[Summary]:
    return [await summarize(conn, settings, r) for r in await workflow_records(conn.js, wf)]


async def follow(
    conn: Connection,
    wf: str,
    on_update: Callable[[WorkflowRecord], None] | None = None,
    on_job: Callable[[JobRecord], None] | None = None,
) -> WorkflowRecord:
    """Watch the workflow's KV record (and, with ``on_job``, its jobs' records) until the
    projector reports it finished."""
    changes = watch_jobs(conn.js, wf) if on_job else watch_workflow(conn.js, wf)
    async for record in changes:
        if isinstance(record, JobRecord):
            if on_job:
                on_job(record)
            continue
        if on_update:
            on_update(record)
        if record.finished:
            return record
    raise JobstreamError(f"stopped watching workflow {wf} before it finished")
