"""Cancel a workflow or some of its jobs: one JobCanceled per unfinished job, with CAS.

Queued dispatches of canceled jobs are refused at claim time; a worker holding one is
told at once (a core-NATS notice) and terminates the process; one that missed the notice
sees the JobCanceled on the job's subject at its next lease check. The scheduler cancels the
dependents of canceled jobs as it does for failures.
"""

from __future__ import annotations

import time

import msgspec
from nats.aio.client import Client as NATS

from jobstream.decide import Cancel, Job, decide, state_after
from jobstream.errors import IllegalTransition, JobstreamError
from jobstream.events import JobClaimed, JobEvent, JobStarted, WorkflowSubmitted
from jobstream.model import TERMINAL, CancelNotice
from jobstream.streams.connection import Connection
from jobstream.streams.store import Conflict, EventStore
from jobstream.streams.subjects import cancel_notice_subject, job_subject, workflow_subject


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
        (result.canceled if await _cancel_one(conn.nc, store, wf, n, reason, actor) else
         result.already_finished).append(n)  # fmt: skip
    return result


async def _cancel_one(
    nc: NATS, store: EventStore, wf: str, n: int, reason: str, actor: str
) -> bool:
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
        if isinstance(last.event, JobClaimed | JobStarted):  # a worker holds it: tell it now
            notice = CancelNotice(wf=wf, job=n)
            await nc.publish(cancel_notice_subject(last.event.worker), msgspec.json.encode(notice))
        return True
