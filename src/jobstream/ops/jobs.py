"""Find a job of a workflow by its index or its name, as users name jobs."""

from __future__ import annotations

from jobstream.errors import JobstreamError
from jobstream.events import JobSubmitted
from jobstream.streams.connection import Connection
from jobstream.streams.store import Stored
from jobstream.views.history import history


async def resolve_job(conn: Connection, wf: str, job: str | int) -> int:
    """A job index, given an index or a job name (names are looked up in the history,
    archived or not)."""
    if isinstance(job, int):
        return job
    if job.isdigit():
        return int(job)
    async for batch in history(conn, wf):
        for found in batch:
            if (
                isinstance(found, Stored)
                and isinstance(found.event, JobSubmitted)
                and found.event.spec.name == job
            ):
                return found.event.job
    raise JobstreamError(f"workflow {wf} has no job named {job!r}")
