"""Restart a workflow's failed, timed-out and canceled jobs (and the ones stuck behind
them) with new attempts; their earlier attempts stay in the history."""

from __future__ import annotations

import time

from jobstream.decide import Restart
from jobstream.errors import IllegalTransition
from jobstream.events import WorkflowArchived, WorkflowRestarted
from jobstream.model import UNSUCCESSFUL, JobState
from jobstream.ops.identity import user_actor
from jobstream.ops.workflows import ArchivedWorkflow, submitted_workflow
from jobstream.streams.connection import Connection
from jobstream.streams.store import Stored
from jobstream.streams.subjects import workflow_subjects

RESTARTABLE = UNSUCCESSFUL | {JobState.BLOCKED}


async def restart_failed(conn: Connection, wf: str, *, actor: str | None = None) -> list[int]:
    """Announce the restart on the workflow subject, then restart each job (CAS)."""
    store = conn.store
    submitted = await submitted_workflow(store, wf)
    repository, who = conn.jobs, actor or user_actor()
    targets = []
    for n in range(submitted.job_count):
        version = await repository.load(wf, n)
        if version is not None and version.job.state in RESTARTABLE:
            targets.append(n)
    if not targets:
        return []
    wf_last = await store.last(workflow_subjects(wf))
    assert wf_last is not None
    if isinstance(wf_last, Stored) and isinstance(wf_last.event, WorkflowArchived):
        raise ArchivedWorkflow(wf)
    announce = WorkflowRestarted(wf=wf, at=time.time(), actor=who, jobs=tuple(targets))
    await store.append(announce, wf_last.seq)
    for n in targets:
        try:
            await repository.handle(wf, n, lambda job: Restart(at=time.time(), actor=who))
        except IllegalTransition:
            continue  # it moved on meanwhile (the scheduler made it ready)
    return targets
