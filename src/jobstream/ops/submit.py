"""Submit an expanded workflow: one WorkflowSubmitted, then one JobSubmitted per job.

Each job is submitted through :func:`jobstream.decide.decide` like every other command,
on a job that does not exist yet (expected subject sequence 0), pipelined in chunks so
a million jobs stream at pipelined speed without holding a million futures.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import msgspec

from jobstream.decide import Job, Submit
from jobstream.events import WorkflowSubmitted
from jobstream.ids import new_workflow_id
from jobstream.model import WorkflowDef
from jobstream.ops.identity import current_user, user_actor
from jobstream.streams.connection import Connection
from jobstream.streams.repository import JobVersion
from jobstream.streams.store import Stored

CHUNK = 5000


def spec_digest(workflow: WorkflowDef) -> str:
    """sha256 of the expanded workflow: equal digests, equal workflows."""
    return hashlib.sha256(msgspec.json.encode(workflow)).hexdigest()


async def submit_workflow(
    conn: Connection,
    workflow: WorkflowDef,
    *,
    workdir: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> str:
    """Append the workflow's events; returns the new workflow id."""
    wf = new_workflow_id()
    user = workflow.user or current_user()
    actor = user_actor(user)
    store = conn.store
    now = time.time()
    await store.append(
        WorkflowSubmitted(
            wf=wf,
            at=now,
            actor=actor,
            name=workflow.name,
            user=user,
            description=workflow.description,
            spec_digest=spec_digest(workflow),
            job_count=len(workflow.jobs),
            workdir=workdir,
            files={f.name: f.path for f in workflow.files},
            user_data={u.name: u.data for u in workflow.user_data},
            extras=workflow.extras,
        ),
        0,
    )
    jobs, total = conn.jobs, len(workflow.jobs)
    for start in range(0, total, CHUNK):
        chunk = [
            (JobVersion(Job(wf=wf, index=job.index), 0), Submit(at=now, actor=actor, spec=job))
            for job in workflow.jobs[start : start + CHUNK]
        ]
        for result in await jobs.execute_many(chunk):
            if not isinstance(result, Stored):
                raise RuntimeError(f"workflow id collision on {wf}: {result}")
        if on_progress:
            on_progress(min(start + CHUNK, total), total)
    return wf
