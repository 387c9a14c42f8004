"""Restart a workflow's failed, timed-out and canceled jobs (and the ones stuck behind
them) with new attempts; their earlier attempts stay in the history."""

from __future__ import annotations

import time

from jobstream.decide import Job, Restart, decide, state_after
from jobstream.errors import IllegalTransition, JobstreamError
from jobstream.events import JobEvent, WorkflowRestarted, WorkflowSubmitted
from jobstream.model import UNSUCCESSFUL, JobState
from jobstream.streams.connection import Connection
from jobstream.streams.store import Conflict, EventStore
from jobstream.streams.subjects import job_subject, workflow_subject

RESTARTABLE = UNSUCCESSFUL | {JobState.BLOCKED}


async def restart_failed(conn: Connection, wf: str, *, actor: str) -> list[int]:
    """Announce the restart on the workflow subject, then restart each job (CAS)."""
    store = EventStore(conn.js, conn.pipeline)
    submitted = await store.first(workflow_subject(wf))
    if submitted is None or not isinstance(submitted.event, WorkflowSubmitted):
        raise JobstreamError(f"no workflow {wf!r} (jobstream status lists them)")
    targets = []
    for n in range(submitted.event.job_count):
        last = await store.last(job_subject(wf, n))
        event = last.event if last is not None else None
        if isinstance(event, JobEvent) and state_after(event) in RESTARTABLE:
            targets.append(n)
    if not targets:
        return []
    wf_last = await store.last(workflow_subject(wf))
    assert wf_last is not None
    announce = WorkflowRestarted(wf=wf, at=time.time(), actor=actor, jobs=tuple(targets))
    await store.append(announce, wf_last.seq)
    for n in targets:
        await _restart_one(store, wf, n, actor)
    return targets


async def _restart_one(store: EventStore, wf: str, n: int, actor: str) -> None:
    while True:
        last = await store.last(job_subject(wf, n))
        assert last is not None and isinstance(last.event, JobEvent)
        job = Job(wf=wf, index=n, state=state_after(last.event))
        try:
            (event,) = decide(job, Restart(at=time.time(), actor=actor))
            await store.append(event, last.seq)
        except Conflict:
            continue  # the scheduler wrote to it meanwhile: decide again
        except IllegalTransition:
            return
        return
