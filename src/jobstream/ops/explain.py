"""``jobstream explain``: why a job is (not) running, from its log and the live workers.

``reasons()`` is pure: given the job's last event, its dependencies' states and the
capacities of the workers that are up, it says what the job waits for.
"""

from __future__ import annotations

import time

import msgspec

from jobstream.config import Settings
from jobstream.decide import state_after
from jobstream.events import (
    AttemptEnded,
    JobCanceled,
    JobClaimed,
    JobEvent,
    JobReady,
    JobStarted,
    JobSubmitted,
)
from jobstream.model import JobDef, JobState, Resources
from jobstream.ops.jobs import resolve_job
from jobstream.streams.connection import Connection
from jobstream.streams.store import EventStore
from jobstream.streams.subjects import job_subjects
from jobstream.views.workers import live_capacities


class Dependency(msgspec.Struct, frozen=True):
    job: int
    name: str
    state: str


def reasons(
    spec: JobDef,
    last: JobEvent,
    deps: list[Dependency],
    workers: list[Resources] | None,
    now: float,
) -> list[str]:
    """Plain sentences: what the job is doing or waiting for."""
    state = state_after(last)
    if state is JobState.COMPLETED:
        return ["completed"]
    if isinstance(last, AttemptEnded):
        return [
            f"{state.value}: attempt {last.attempt} on {last.worker} returned {last.return_code}"
        ]
    if isinstance(last, JobCanceled):
        return [f"canceled: {last.reason}"]
    if state in (JobState.SUBMITTED, JobState.BLOCKED):
        waiting = [d for d in deps if d.state != JobState.COMPLETED.value]
        if not waiting:
            return ["all dependencies completed; the scheduler will make it ready"]
        return [
            f"waiting for dependency {d.name!r} (job {d.job}), which is {d.state}" for d in waiting
        ]
    if isinstance(last, JobClaimed | JobStarted):
        verb = "running" if isinstance(last, JobStarted) else "claimed"
        since = now - last.at
        return [
            f"{verb} on {last.worker} (attempt {last.attempt}) for {since:.0f} s; "
            "its lease is renewed while the process runs"
        ]
    need = spec.resources
    lines = [
        f"ready since {now - last.at:.0f} s, waiting for a worker of class "
        f"{need.hardware_class()} in pool {spec.pool!r}"
    ]
    if isinstance(last, JobReady) and workers is not None:
        if not workers:
            lines.append("no worker is running")
        elif not any(need.fits_in(w) for w in workers):
            lines.append(_shortfall(need, workers))
        else:
            lines.append("a running worker fits it: it is queued behind other work")
    return lines


def _shortfall(need: Resources, workers: list[Resources]) -> str:
    missing = []
    for field, label in (
        ("num_cpus", "CPUs"),
        ("memory_mib", "MiB memory"),
        ("num_gpus", "GPUs"),
        ("runtime_s", "s of walltime"),
    ):
        best = max(getattr(w, field) for w in workers)
        if getattr(need, field) > best:
            missing.append(f"{getattr(need, field)} {label} (largest worker: {best})")
    return "no running worker has " + ", ".join(missing)


async def explain_job(conn: Connection, settings: Settings, wf: str, job: str | int) -> list[str]:
    """Why a job (index or name) is or is not running: from its log, its dependencies'
    states and the capacities of the workers that are up."""
    index = await resolve_job(conn, wf, job)
    workers = await live_capacities(conn, settings)
    return await _explain(conn, wf, index, workers)


async def _explain(
    conn: Connection, wf: str, job: int, workers: list[Resources] | None
) -> list[str]:
    """Gather the job's last event and its dependencies' states, then explain."""
    found = await _submitted(conn.store, wf, job)
    if found is None:
        return [f"workflow {wf} has no job {job}"]
    submitted, last = found
    deps = []
    for dep in submitted.spec.depends_on:
        dep_found = await _submitted(conn.store, wf, dep)
        if dep_found is None:
            deps.append(Dependency(dep, str(dep), "not submitted"))
        else:
            deps.append(Dependency(dep, dep_found[0].spec.name, state_after(dep_found[1]).value))
    return reasons(submitted.spec, last, deps, workers, time.time())


async def _submitted(store: EventStore, wf: str, job: int) -> tuple[JobSubmitted, JobEvent] | None:
    """A job's JobSubmitted and its last event (ill-formed messages passed over)."""
    subject = job_subjects(wf, job)
    first, latest = await store.first(subject), await store.latest(subject)
    if first is None or not isinstance(first.event, JobSubmitted) or latest.event is None:
        return None
    last = latest.event.event
    return (first.event, last) if isinstance(last, JobEvent) else None
