"""Submit an expanded workflow: one WorkflowSubmitted, then one JobSubmitted per job.

Every JobSubmitted is appended with expected subject sequence 0 (the job did not exist),
pipelined in chunks so a million jobs stream at pipelined speed without holding a
million futures.
"""

from __future__ import annotations

import getpass
import hashlib
import time
from collections.abc import Callable

import msgspec

from jobstream.events import Event, JobSubmitted, WorkflowSubmitted
from jobstream.ids import new_workflow_id
from jobstream.model import WorkflowDef
from jobstream.streams.connection import Connection
from jobstream.streams.store import Conflict, EventStore

CHUNK = 5000


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


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
    actor = f"user:{user}"
    store = EventStore(conn.js, conn.pipeline)
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
    total = len(workflow.jobs)
    for start in range(0, total, CHUNK):
        chunk: list[tuple[Event, int | None]] = [
            (JobSubmitted(wf=wf, job=job.index, at=now, actor=actor, spec=job), 0)
            for job in workflow.jobs[start : start + CHUNK]
        ]
        for result in await store.append_many(chunk):
            if isinstance(result, Conflict):
                raise RuntimeError(f"workflow id collision on {wf}: {result}")
        if on_progress:
            on_progress(min(start + CHUNK, total), total)
    return wf
