"""The job state machine: every rule about job states, as two pure functions.

``decide(job, command) -> list[event]`` says what a command means in the job's current
state (or raises :class:`IllegalTransition`); ``evolve(job, event) -> job`` folds a fact
into the state. No I/O, no clock: time and actor arrive inside the command. The
scheduler, the workers, replay and the tests fold with these same functions.

    submitted -> blocked -> ready -> claimed -> running -> completed | failed | timed_out
    submitted -> ready;  claimed -> failed (spawn error);  any non-terminal -> canceled
    claimed | running -> (lost ->) claimed by another worker when the lease expired
    running -> retrying -> ready: a failure-handler rule matched the return code
    failed | timed_out | canceled | blocked -> submitted: restarted by the user
    claimed | running -> retrying -> ready: terminated by a worker that is shutting down
"""

from __future__ import annotations

import functools
from typing import Any, TypedDict

import msgspec

from jobstream.errors import IllegalTransition
from jobstream.events import (
    ATTEMPT_FIELDS,
    START_FIELDS,
    AttemptEnded,
    JobBlocked,
    JobCanceled,
    JobClaimed,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobLost,
    JobReady,
    JobRestarted,
    JobRetryScheduled,
    JobStarted,
    JobSubmitted,
    JobTerminated,
    JobTimedOut,
)
from jobstream.model import TERMINAL, UNSUCCESSFUL, JobDef, JobState


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """What the rules need to know about one job: the folded aggregate."""

    wf: str
    index: int
    state: JobState | None = None
    attempt: int = 0
    worker: str | None = None
    spec: JobDef | None = None


class _Ids(TypedDict):
    wf: str
    job: int
    at: float
    actor: str


# --- commands --------------------------------------------------------------------------


class Command(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    actor: str


class Submit(Command, frozen=True, kw_only=True):
    spec: JobDef


class Block(Command, frozen=True, kw_only=True):
    unmet: tuple[int, ...]


class MakeReady(Command, frozen=True, kw_only=True):
    pool: str
    hardware_class: str


class Claim(Command, frozen=True, kw_only=True):
    worker: str
    lease_s: float


class Start(Command, frozen=True, kw_only=True):
    worker: str
    pid: int
    host: str
    gpu_ids: tuple[int, ...] = ()


class Finish(Command, frozen=True, kw_only=True):
    worker: str
    attempt: int
    return_code: int
    exec_time_s: float
    timed_out: bool = False
    peak_memory_mib: float = 0.0
    cpu_time_s: float = 0.0
    stdout: str = ""
    stderr: str = ""
    stderr_tail: str = ""
    retry_rule: int | None = None  # chosen with model.retry_rule_for: retry, not fail
    retry: int = 0
    retry_delay_s: float = 0.0  # the rule's delay before this retry
    recovery_return_code: int | None = None


class Cancel(Command, frozen=True, kw_only=True):
    reason: str


class Terminate(Command, frozen=True, kw_only=True):
    """The worker stops an attempt that cannot finish (it is shutting down)."""

    worker: str
    attempt: int
    reason: str
    return_code: int
    exec_time_s: float


class Restart(Command, frozen=True, kw_only=True):
    reason: str = "restarted by user"


class Reclaim(Command, frozen=True, kw_only=True):
    """Take over a job whose holder's lease expired (JetStream redelivered its dispatch)."""

    worker: str
    lease_s: float
    reason: str = "lease expired"


AnyCommand = (
    Submit | Block | MakeReady | Claim | Start | Finish | Cancel | Reclaim | Restart | Terminate
)

# Which states each command may be applied in.
ALLOWED: dict[type[Command], frozenset[JobState | None]] = {
    Submit: frozenset({None}),
    Block: frozenset({JobState.SUBMITTED}),
    MakeReady: frozenset({JobState.SUBMITTED, JobState.BLOCKED, JobState.RETRYING}),
    Claim: frozenset({JobState.READY}),
    Start: frozenset({JobState.CLAIMED}),
    Finish: frozenset({JobState.CLAIMED, JobState.RUNNING}),
    Cancel: frozenset(set(JobState) - TERMINAL),
    Reclaim: frozenset({JobState.CLAIMED, JobState.RUNNING}),
    Restart: frozenset(UNSUCCESSFUL | {JobState.BLOCKED}),
    Terminate: frozenset({JobState.CLAIMED, JobState.RUNNING}),
}


def decide(job: Job, command: AnyCommand) -> list[JobEvent]:
    """The events a command produces for ``job``; IllegalTransition when it may not apply."""
    if job.state not in ALLOWED[type(command)]:
        state = job.state.value if job.state else "unsubmitted"
        raise IllegalTransition(
            f"job {job.wf}.{job.index}: {type(command).__name__} not allowed when {state}"
        )
    base = _Ids(wf=job.wf, job=job.index, at=command.at, actor=command.actor)
    match command:
        case Submit(spec=spec):
            return [JobSubmitted(**base, spec=spec)]
        case Block(unmet=unmet):
            return [JobBlocked(**base, unmet=unmet)]
        case MakeReady(pool=pool, hardware_class=hardware_class):
            return [JobReady(**base, pool=pool, hardware_class=hardware_class)]
        case Claim(worker=worker, lease_s=lease_s):
            return [JobClaimed(**base, worker=worker, attempt=job.attempt + 1, lease_s=lease_s)]
        case Start():
            _require_owner(job, command.worker, job.attempt)
            return [JobStarted(**base, **_fields(command, START_FIELDS), attempt=job.attempt)]
        case Finish() | Terminate():
            _require_owner(job, command.worker, command.attempt)
            return [_ending(command, base)]
        case Cancel(reason=reason):
            return [JobCanceled(**base, reason=reason)]
        case Restart(reason=reason):
            return [JobRestarted(**base, reason=reason)]
        case Reclaim():
            return _reclaim(job, command, base)
    raise TypeError(f"unknown command {command!r}")  # pragma: no cover - exhaustive match


def _require_owner(job: Job, worker: str, attempt: int) -> None:
    """Only the worker holding the current attempt may advance it (fencing)."""
    if job.worker != worker or job.attempt != attempt:
        raise IllegalTransition(
            f"job {job.wf}.{job.index}: attempt {attempt} of {worker} is not the current "
            f"attempt {job.attempt} of {job.worker}"
        )


def _fields(command: Command, names: tuple[str, ...]) -> dict[str, Any]:
    """The command's values of these event fields (those it has)."""
    return {name: getattr(command, name) for name in _shared(type(command), names)}


@functools.cache
def _shared(kind: type[Command], names: tuple[str, ...]) -> tuple[str, ...]:
    """The event fields a command type has (found once per type: decide is per job)."""
    return tuple(name for name in names if name in kind.__struct_fields__)


def _ending(command: Finish | Terminate, base: _Ids) -> AttemptEnded:
    """The event that ends an attempt: why (return code, timeout, rule, termination)."""
    facts = _fields(command, ATTEMPT_FIELDS)
    if isinstance(command, Terminate):
        return JobTerminated(**base, **facts, reason=command.reason)
    if command.retry_rule is not None and not command.timed_out:
        return JobRetryScheduled(
            **base,
            **facts,
            rule=command.retry_rule,
            retry=command.retry,
            recovery_return_code=command.recovery_return_code,
            retry_at=command.at + command.retry_delay_s if command.retry_delay_s > 0 else 0.0,
        )
    if command.timed_out:
        return JobTimedOut(**base, **facts)
    return (JobCompleted if command.return_code == 0 else JobFailed)(**base, **facts)


def _reclaim(job: Job, command: Reclaim, base: _Ids) -> list[JobEvent]:
    """The lost attempt, then the new claim (both with CAS, in this order)."""
    if command.worker == job.worker:
        raise IllegalTransition(f"job {job.wf}.{job.index}: {command.worker} already holds it")
    assert job.worker is not None
    lost = JobLost(**base, worker=job.worker, attempt=job.attempt, reason=command.reason)
    claimed = JobClaimed(
        **base, worker=command.worker, attempt=job.attempt + 1, lease_s=command.lease_s
    )
    return [lost, claimed]


_NEXT_STATE: dict[type[JobEvent], JobState] = {
    JobSubmitted: JobState.SUBMITTED,
    JobBlocked: JobState.BLOCKED,
    JobReady: JobState.READY,
    JobClaimed: JobState.CLAIMED,
    JobStarted: JobState.RUNNING,
    JobCompleted: JobState.COMPLETED,
    JobFailed: JobState.FAILED,
    JobTimedOut: JobState.TIMED_OUT,
    JobCanceled: JobState.CANCELED,
    JobLost: JobState.READY,
    JobRestarted: JobState.SUBMITTED,
    JobRetryScheduled: JobState.RETRYING,
    JobTerminated: JobState.RETRYING,
}


# The same mapping by type name, for folds written in SQL.
STATE_BY_EVENT: dict[str, str] = {kind.__name__: state.value for kind, state in _NEXT_STATE.items()}


def state_after(event: JobEvent) -> JobState:
    """The state a job is in right after ``event``."""
    return _NEXT_STATE[type(event)]


def evolve(job: Job, event: JobEvent) -> Job:
    """Fold one event into the job. Trusts the log: the server enforced the order."""
    state = state_after(event)
    if isinstance(event, JobSubmitted):
        return msgspec.structs.replace(job, state=state, spec=event.spec)
    if isinstance(event, JobClaimed):
        return msgspec.structs.replace(job, state=state, attempt=event.attempt, worker=event.worker)
    return msgspec.structs.replace(job, state=state)


def from_last_event(wf: str, index: int, event: JobEvent) -> Job:
    """The job as its last event tells it: its state, and the attempt and worker that
    event names. Enough to decide every command but Claim, whose attempt number comes
    with the dispatch (a JobReady names no attempt)."""
    return Job(
        wf=wf,
        index=index,
        state=state_after(event),
        attempt=getattr(event, "attempt", 0),
        worker=getattr(event, "worker", None),
    )


def fold(job: Job, events: list[JobEvent]) -> Job:
    """Fold a job's history, oldest first."""
    for event in events:
        job = evolve(job, event)
    return job
