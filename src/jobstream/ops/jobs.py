"""Find a job of a workflow by its index or its name, as users name jobs."""

from __future__ import annotations

from jobstream.errors import JobstreamError
from jobstream.events import JobSubmitted
from jobstream.streams.connection import Connection
from jobstream.streams.reader import read_until_caught_up
from jobstream.streams.subjects import jobs_filter


async def resolve_job(conn: Connection, wf: str, job: str | int) -> int:
    """A job index, given an index or a job name (names are looked up in the log)."""
    if isinstance(job, int):
        return job
    if job.isdigit():
        return int(job)
    async for stored in read_until_caught_up(conn.js, jobs_filter(wf)):
        if isinstance(stored.event, JobSubmitted) and stored.event.spec.name == job:
            return stored.event.job
    raise JobstreamError(f"workflow {wf} has no job named {job!r}")
