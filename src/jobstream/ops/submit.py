"""Submit an expanded workflow: one WorkflowSubmitted, then one JobSubmitted per job.

Each job is submitted through :func:`jobstream.decide.decide` like every other command,
on a job that does not exist yet (expected subject sequence 0), pipelined in chunks so
a million jobs stream at pipelined speed without holding a million futures.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

import msgspec

from jobstream import codec
from jobstream.config import Settings
from jobstream.decide import Job, Submit
from jobstream.errors import JobstreamError
from jobstream.events import JobSubmitted, WorkflowSubmitted
from jobstream.ids import new_workflow_id
from jobstream.model import JobDef, WorkflowDef
from jobstream.ops.identity import current_user, user_actor
from jobstream.spec.extras import actions_enable
from jobstream.streams.connection import Connection
from jobstream.streams.repository import JobVersion
from jobstream.streams.store import Stored

CHUNK = 5000
HEADROOM = 1024  # bytes: headers, and what a WORK message adds around a job's spec
ESCAPED = 6  # JSON bytes one character may take at most (\u00XX)


class TooLarge(JobstreamError):
    """An event of the workflow would be larger than the server takes."""


def check_submitters_workflow(asked: WorkflowSubmitted, settings: Settings) -> None:
    """What a submitter's workflow may not ask of this server: JobstreamError naming it.
    Its jobs run on the workers anyway; allocations would be submitted as, and charged
    to, the server's own Slurm user, so they need the admin's consent."""
    if not 0 <= asked.job_count <= settings.max_jobs:
        raise JobstreamError(
            f"{asked.job_count:,} jobs: this server takes at most {settings.max_jobs:,}"
        )
    if actions_enable(asked.extras) and not settings.autoalloc_for_submitters:
        raise JobstreamError(
            "actions: this server submits no Slurm allocations for submitters' workflows "
            "(schedule_nodes on_jobs_ready; an admin may set autoalloc_for_submitters)"
        )


def spec_digest(workflow: WorkflowDef) -> str:
    """sha256 of the expanded workflow: equal digests, equal workflows."""
    return hashlib.sha256(msgspec.json.encode(workflow)).hexdigest()


def workflow_submitted(
    workflow: WorkflowDef, workdir: str, user: str | None = None
) -> WorkflowSubmitted:
    """The event opening a new workflow (a new id), by ``user`` (else the spec's, else
    whoever runs this)."""
    user = user or workflow.user or current_user()
    return WorkflowSubmitted(
        wf=new_workflow_id(),
        at=time.time(),
        actor=user_actor(user),
        name=workflow.name,
        user=user,
        description=workflow.description,
        spec_digest=spec_digest(workflow),
        job_count=len(workflow.jobs),
        workdir=workdir,
        files={f.name: f.path for f in workflow.files},
        user_data={u.name: u.data for u in workflow.user_data},
        extras=workflow.extras,
    )


async def submit_jobs(conn: Connection, opened: WorkflowSubmitted, jobs: Sequence[JobDef]) -> None:
    """Append the JobSubmitted of some of an opened workflow's jobs (each on a job that
    does not exist yet: CAS at 0; the same append again is recognised, not doubled)."""
    chunk = [
        (
            JobVersion(Job(wf=opened.wf, index=job.index), 0),
            Submit(at=opened.at, actor=opened.actor, spec=job),
        )
        for job in jobs
    ]
    for result in await conn.jobs.execute_many(chunk):
        if not isinstance(result, Stored):
            raise JobstreamError(f"workflow {opened.wf}: job submitted twice: {result}")


async def submit_workflow(
    conn: Connection,
    workflow: WorkflowDef,
    *,
    workdir: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> str:
    """Append the workflow's events; returns the new workflow id."""
    submitted = workflow_submitted(workflow, workdir)
    check_sizes(submitted, workflow, conn.nc.max_payload)
    await conn.store.append(submitted, 0)
    total = len(workflow.jobs)
    for start in range(0, total, CHUNK):
        await submit_jobs(conn, submitted, workflow.jobs[start : start + CHUNK])
        if on_progress:
            on_progress(min(start + CHUNK, total), total)
    return submitted.wf


def check_sizes(submitted: WorkflowSubmitted, workflow: WorkflowDef, limit: int) -> None:
    """TooLarge, before anything is appended, when an event of the workflow would not fit
    in one message of the server (``limit``: its max payload). A job is encoded only
    when a bound on its size does not already show that it fits."""
    room = limit - HEADROOM
    size = len(codec.encode(submitted))
    if size > room:
        raise TooLarge(
            f"the workflow's own event (files, user data, extras) is {size:,} bytes; "
            f"the server takes at most {room:,}: keep large values in files"
        )
    room -= ESCAPED * len(submitted.workdir)  # a WORK message carries it with the spec
    for job in workflow.jobs:
        if _bound(job) <= room:
            continue
        event = JobSubmitted(
            wf=submitted.wf, job=job.index, at=0.0, actor=submitted.actor, spec=job
        )
        size = len(codec.encode(event))
        if size > room:
            raise TooLarge(
                f"job {job.name!r} (index {job.index}) would be an event of {size:,} bytes; "
                f"the server takes at most {room:,}: keep large inputs in files"
            )


def _bound(job: JobDef) -> int:
    """More bytes than the job's encoded spec can take (every character escaped)."""
    optional = (job.invocation_script, job.resource_requirements, job.failure_handler)
    texts = (job.name, job.command, job.pool, *(text or "" for text in optional))
    names = (*job.input_files, *job.output_files, *job.input_user_data, *job.output_user_data)
    scripts = (rule.recovery_script or "" for rule in job.retry_rules)
    pairs = sum(len(key) + len(value) for key, value in job.env.items())
    chars = sum(map(len, texts)) + sum(map(len, names)) + sum(map(len, scripts)) + pairs
    return ESCAPED * chars + 24 * len(job.depends_on) + 128 * len(job.retry_rules) + 1024
