"""Every fact jobstream records: one tagged union of immutable msgspec Structs.

Events are past-tense facts, JSON on the wire. Each carries the workflow id, the job
index (job events), the time it was decided and the actor that decided it. The ``type``
tag and the schema version also travel in message headers so tools can route without
decoding. Add fields only with defaults; bump ``VERSION`` and add an upcaster in
``jobstream.codec`` for any change that is not additive.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from jobstream.model import JobDef, Resources


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields common to every event: when (unix seconds) and who decided it."""

    VERSION: ClassVar[int] = 1

    at: float
    actor: str


class WorkflowEvent(Event, frozen=True, kw_only=True):
    """An event of one workflow; ``wf`` is its id."""

    wf: str


class JobEvent(WorkflowEvent, frozen=True, kw_only=True):
    """An event on one job's own subject ``ev.<wf>.job.<n>``."""

    job: int


# --- workflow --------------------------------------------------------------------------


class WorkflowSubmitted(WorkflowEvent, frozen=True, kw_only=True, tag=True):
    name: str
    user: str
    description: str = ""
    spec_digest: str
    job_count: int
    workdir: str = ""
    files: dict[str, str] = {}
    user_data: dict[str, Any] = {}
    extras: dict[str, Any] = {}


class WorkflowCompleted(WorkflowEvent, frozen=True, kw_only=True, tag=True):
    counts: dict[str, int]


class WorkflowRestarted(WorkflowEvent, frozen=True, kw_only=True, tag=True):
    """The workflow is open again: the listed jobs get new attempts."""

    jobs: tuple[int, ...]


class WorkflowArchived(WorkflowEvent, frozen=True, kw_only=True, tag=True):
    """The workflow's events up to ``last_seq`` are kept in the object store ARCHIVE as
    Parquet (``object``) and removed from EVENTS; this event stays in the log, where
    readers of the history find the archive."""

    object: str
    events: int
    first_seq: int
    last_seq: int
    size: int
    digest: str


# --- job -------------------------------------------------------------------------------


class JobSubmitted(JobEvent, frozen=True, kw_only=True, tag=True):
    spec: JobDef


class JobBlocked(JobEvent, frozen=True, kw_only=True, tag=True):
    unmet: tuple[int, ...]


class JobReady(JobEvent, frozen=True, kw_only=True, tag=True):
    pool: str
    hardware_class: str


class JobClaimed(JobEvent, frozen=True, kw_only=True, tag=True):
    worker: str
    attempt: int
    lease_s: float


class JobStarted(JobEvent, frozen=True, kw_only=True, tag=True):
    worker: str
    attempt: int
    pid: int
    host: str
    gpu_ids: tuple[int, ...] = ()


class AttemptEnded(JobEvent, frozen=True, kw_only=True):
    """Fields of every event that ends an attempt: why, how long, where the logs are."""

    worker: str
    attempt: int
    return_code: int
    exec_time_s: float
    peak_memory_mib: float = 0.0
    cpu_time_s: float = 0.0
    stdout: str = ""
    stderr: str = ""
    stderr_tail: str = ""  # last lines of stderr, so a failure is readable without the file


class JobCompleted(AttemptEnded, frozen=True, kw_only=True, tag=True):
    pass


class JobFailed(AttemptEnded, frozen=True, kw_only=True, tag=True):
    pass


class JobTimedOut(AttemptEnded, frozen=True, kw_only=True, tag=True):
    pass


class JobRetryScheduled(AttemptEnded, frozen=True, kw_only=True, tag=True):
    """The attempt failed, and failure-handler rule ``rule`` gives the job another one."""

    rule: int
    retry: int  # 1 for the first retry under this rule
    recovery_return_code: int | None = None  # of the rule's recovery script, if it has one
    retry_at: float = 0.0  # when the job is made ready again (the rule's delay); 0: at once


class JobTerminated(AttemptEnded, frozen=True, kw_only=True, tag=True):
    """The worker had to stop the attempt (shutdown, end of allocation); the job is
    dispatched again and the attempt does not count as a failure."""

    reason: str


class JobCanceled(JobEvent, frozen=True, kw_only=True, tag=True):
    reason: str


class JobRestarted(JobEvent, frozen=True, kw_only=True, tag=True):
    """A finished, unsuccessful job (or one blocked behind such) is to run again."""

    reason: str


class JobLost(JobEvent, frozen=True, kw_only=True, tag=True):
    """An attempt whose worker stopped renewing its lease; the job is claimable again."""

    worker: str
    attempt: int
    reason: str


# --- workers ---------------------------------------------------------------------------


class WorkerStarted(Event, frozen=True, kw_only=True, tag=True):
    worker: str
    host: str
    capacity: Resources
    pools: tuple[str, ...]
    walltime_s: float
    slurm_job_id: str = ""  # the Slurm allocation it runs in, if any


class WorkerStopped(Event, frozen=True, kw_only=True, tag=True):
    worker: str
    reason: str
    jobs_run: int


class WorkerLost(Event, frozen=True, kw_only=True, tag=True):
    """A worker stopped renewing a lease (died, lost its node); found by ``actor``."""

    worker: str
    reason: str


# --- Slurm allocations ------------------------------------------------------------------


class SlurmAllocationEvent(Event, frozen=True, kw_only=True):
    """An event of one Slurm allocation, on ``ev.slurm.<allocation>``."""

    allocation: str  # jobstream's name for it (its credentials' user), e.g. alloc-1a2b3c4d
    slurm_job_id: str


class SlurmAllocationSubmitted(SlurmAllocationEvent, frozen=True, kw_only=True, tag=True):
    """sbatch took it: for a workflow's scheduler (``schedule-nodes``)."""

    wf: str
    scheduler: str
    nodes: int
    walltime_s: float


class SlurmAllocationStarted(SlurmAllocationEvent, frozen=True, kw_only=True, tag=True):
    """Slurm started it on these nodes (seen by the server's watcher)."""

    nodes_list: str


class SlurmAllocationEnded(SlurmAllocationEvent, frozen=True, kw_only=True, tag=True):
    """It left Slurm's queue in this state (COMPLETED, TIMEOUT, CANCELLED, …)."""

    state: str


SLURM_EVENTS = (SlurmAllocationSubmitted, SlurmAllocationStarted, SlurmAllocationEnded)

AnyEvent = (
    WorkflowSubmitted
    | WorkflowCompleted
    | WorkflowRestarted
    | WorkflowArchived
    | JobSubmitted
    | JobBlocked
    | JobReady
    | JobClaimed
    | JobStarted
    | JobCompleted
    | JobFailed
    | JobTimedOut
    | JobRetryScheduled
    | JobTerminated
    | JobCanceled
    | JobLost
    | JobRestarted
    | WorkerStarted
    | WorkerStopped
    | WorkerLost
    | SlurmAllocationSubmitted
    | SlurmAllocationStarted
    | SlurmAllocationEnded
)

ATTEMPT_ENDINGS = (JobCompleted, JobFailed, JobTimedOut)


def own_fields(kind: type[Event], base: type[Event]) -> tuple[str, ...]:
    """The fields ``kind`` adds to ``base``, in order: what a command must supply."""
    inherited = set(base.__struct_fields__)
    return tuple(name for name in kind.__struct_fields__ if name not in inherited)


ATTEMPT_FIELDS = own_fields(AttemptEnded, JobEvent)  # worker, attempt, return_code, ...
START_FIELDS = own_fields(JobStarted, JobEvent)  # worker, attempt, pid, host, gpu_ids
