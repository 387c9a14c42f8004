"""How workflows stand: counts from the JOBS bucket, the jobs that did not complete from
the read models, and following a workflow until it ends."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import msgspec

from jobstream.config import Settings
from jobstream.errors import JobstreamError
from jobstream.projections.kv import watch_jobs, watch_workflow, workflow_records
from jobstream.projections.records import JobProblem, JobRecord, WorkflowStatus
from jobstream.streams.connection import Connection
from jobstream.views.sql import run_sql

PROBLEM_LIMIT = 50
_WF_ID = re.compile(r"[0-9a-z]{1,64}\Z")


def problems_sql(wf: str) -> str:
    """Jobs of ``wf`` that did not complete, with their latest attempt's details."""
    if not _WF_ID.match(wf):
        raise ValueError(f"not a workflow id: {wf!r}")
    return f"""
        SELECT j.job, j.name, j.state, a.return_code, coalesce(j.cancel_reason, '') AS reason,
               coalesce(a.stderr_tail, '') AS stderr_tail, coalesce(a.stderr, '') AS stderr
        FROM jobs j LEFT JOIN attempts a
          ON a.wf = j.wf AND a.job = j.job AND a.attempt = j.attempt
        WHERE j.wf = '{wf}' AND j.state <> 'completed'
        ORDER BY j.job LIMIT {PROBLEM_LIMIT}
    """


async def with_problems(
    conn: Connection, settings: Settings, status: WorkflowStatus
) -> WorkflowStatus:
    """The status with the jobs that did not complete (from the read models)."""
    if status.counts.get("completed", 0) >= status.job_count:
        return status
    rows = (await run_sql(conn, settings, problems_sql(status.wf))).to_pylist()
    return msgspec.structs.replace(status, problems=msgspec.convert(rows, list[JobProblem]))


async def statuses(conn: Connection, settings: Settings, wf: str | None) -> list[WorkflowStatus]:
    """One workflow's status, or every workflow's (in submission order), with problems."""
    return [await with_problems(conn, settings, s) for s in await workflow_records(conn.js, wf)]


async def latest_workflow(conn: Connection) -> str | None:
    """The latest unfinished workflow, else the latest one (None: there are none)."""
    found = await workflow_records(conn.js)
    return ([s for s in found if not s.finished] or found)[-1].wf if found else None


def changes(conn: Connection, wf: str) -> AsyncIterator[JobRecord | WorkflowStatus]:
    """Every job state change of a workflow (and its status), until it has finished."""
    return watch_jobs(conn.js, wf)


async def follow(
    conn: Connection,
    wf: str,
    on_update: Callable[[WorkflowStatus], None] | None = None,
    on_job: Callable[[JobRecord], None] | None = None,
) -> WorkflowStatus:
    """Watch the workflow's KV record (and, with ``on_job``, its jobs' records) until the
    projector reports it finished."""
    found = watch_jobs(conn.js, wf) if on_job else watch_workflow(conn.js, wf)
    async for record in found:
        if isinstance(record, JobRecord):
            if on_job:
                on_job(record)
            continue
        if on_update:
            on_update(record)
        if record.finished:
            return record
    raise JobstreamError(f"stopped watching workflow {wf} before it finished")
