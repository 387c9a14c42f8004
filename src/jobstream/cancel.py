"""Cancel a workflow or some of its jobs: one JobCanceled per unfinished job, with CAS.

Queued dispatches of canceled jobs are refused at claim time; workers running one see the
JobCanceled on the job's subject and terminate the process. The scheduler cancels the
dependents of canceled jobs as it does for failures.
"""

from __future__ import annotations

import time

import msgspec

from jobstream.decide import Cancel, Job, decide, state_after
from jobstream.errors import IllegalTransition, JobstreamError
from jobstream.events import JobEvent, WorkflowSubmitted
from jobstream.model import TERMINAL
from jobstream.streams.connection import Connection
from jobstream.streams.store import Conflict, EventStore
from jobstream.streams.subjects import job_subject, workflow_subject


class CancelResult(msgspec.Struct):
    workflow: str
    canceled: list[int]
    already_finished: list[int]


async def cancel_jobs(
    conn: Connection, wf: str, jobs: list[int] | None, *, reason: str, actor: str
) -> CancelResult:
    """Cancel the given jobs (all of the workflow's when None) that have not finished."""
    store = EventStore(conn.js, conn.pipeline)
    submitted = await store.first(workflow_subject(wf))
    if submitted is None or not isinstance(submitted.event, WorkflowSubmitted):
        raise JobstreamError(f"no workflow {wf!r} (jobstream status lists them)")
    targets = jobs if jobs is not None else list(range(submitted.event.job_count))
    result = CancelResult(wf, [], [])
    for n in targets:
        (result.canceled if await _cancel_one(store, wf, n, reason, actor) else
         result.already_finished).append(n)  # fmt: skip
    return result


async def _cancel_one(store: EventStore, wf: str, n: int, reason: str, actor: str) -> bool:
    """True when this call canceled the job; retried while others write to it."""
    while True:
        last = await store.last(job_subject(wf, n))
        if last is None:
            raise JobstreamError(f"workflow {wf} has no job {n}")
        assert isinstance(last.event, JobEvent)
        job = Job(wf=wf, index=n, state=state_after(last.event))
        if job.state in TERMINAL:
            return False
        try:
            (event,) = decide(job, Cancel(at=time.time(), actor=actor, reason=reason))
            await store.append(event, last.seq)
        except Conflict:
            continue
        except IllegalTransition:
            return False
        return True
