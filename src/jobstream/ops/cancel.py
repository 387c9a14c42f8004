"""Cancel a workflow or some of its jobs: one JobCanceled per unfinished job, with CAS.

Queued dispatches of canceled jobs are refused at claim time; a worker holding one is
told at once (a core-NATS notice) and terminates the process; one that missed the notice
sees the JobCanceled on the job's subject at its next lease check. The scheduler cancels
the dependents of canceled jobs as it does for failures.
"""

from __future__ import annotations

import time

import msgspec

from jobstream.decide import Cancel
from jobstream.errors import IllegalTransition, JobstreamError
from jobstream.model import JobNotice, JobState
from jobstream.ops.identity import user_actor
from jobstream.ops.workflows import submitted_workflow
from jobstream.streams.connection import Connection
from jobstream.streams.subjects import cancel_notice_subject

HELD = frozenset({JobState.CLAIMED, JobState.RUNNING})  # a worker holds the job


class CancelResult(msgspec.Struct):
    workflow: str
    canceled: list[int]
    already_finished: list[int]


async def cancel_jobs(
    conn: Connection,
    wf: str,
    jobs: list[int] | None = None,
    *,
    reason: str = "canceled by user",
    actor: str | None = None,
) -> CancelResult:
    """Cancel the given jobs (all of the workflow's when None) that have not finished."""
    store = conn.store
    submitted = await submitted_workflow(store, wf)
    repository, who = conn.jobs, actor or user_actor()
    result = CancelResult(wf, [], [])
    for n in jobs if jobs is not None else range(submitted.job_count):
        try:
            handled = await repository.handle(
                wf, n, lambda job: Cancel(at=time.time(), actor=who, reason=reason)
            )
        except IllegalTransition:  # finished already
            result.already_finished.append(n)
            continue
        if handled is None:
            raise JobstreamError(f"workflow {wf} has no job {n}")
        result.canceled.append(n)
        held = handled.before.job
        if held.state in HELD and held.worker:  # tell the worker now
            notice = msgspec.json.encode(JobNotice(wf=wf, job=n))
            await conn.nc.publish(cancel_notice_subject(held.worker), notice)
    return result
