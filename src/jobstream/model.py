"""The one schema every layer shares: resources, expanded jobs, files, workflows, job states.

A spec file is parsed into these types (``jobstream.spec``), the client puts them in
events, the scheduler routes on them and the worker runs them. They are frozen msgspec
Structs so they can be hashed, encoded and compared cheaply.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

DEFAULT_POOL = "default"
# A hardware class names each resource by a letter, in this order: ``c1.m1024.g0.n1.t3600``.
HARDWARE_CLASS_FIELDS = {
    "c": "num_cpus",
    "m": "memory_mib",
    "g": "num_gpus",
    "n": "num_nodes",
    "t": "runtime_s",
}


class Resources(msgspec.Struct, frozen=True, kw_only=True):
    """An exact, normalized resource requirement of one job (or capacity of one worker)."""

    num_cpus: int = 1
    memory_mib: int = 1024
    num_gpus: int = 0
    num_nodes: int = 1
    runtime_s: int = 3600

    def hardware_class(self) -> str:
        """The routing key of every job with this requirement: ``c1.m1024.g0.n1.t3600``
        (:data:`HARDWARE_CLASS_FIELDS`, spelled out: this is on the dispatch path)."""
        return (
            f"c{self.num_cpus}.m{self.memory_mib}.g{self.num_gpus}"
            f".n{self.num_nodes}.t{self.runtime_s}"
        )

    @classmethod
    def from_hardware_class(cls, name: str) -> Resources:
        """Inverse of :meth:`hardware_class`; raises ValueError on a malformed name."""
        parts, keys = name.split("."), HARDWARE_CLASS_FIELDS
        if len(parts) != len(keys) or [p[:1] for p in parts] != list(keys):
            raise ValueError(f"not a hardware class: {name!r}")
        return cls(**{keys[p[0]]: int(p[1:]) for p in parts})

    def fits_in(self, capacity: Resources) -> bool:
        """True when a job needing ``self`` can run inside ``capacity`` (one node)."""
        return (
            self.num_cpus <= capacity.num_cpus
            and self.memory_mib <= capacity.memory_mib
            and self.num_gpus <= capacity.num_gpus
            and self.num_nodes <= capacity.num_nodes
            and self.runtime_s <= capacity.runtime_s
        )


class FileDef(msgspec.Struct, frozen=True, kw_only=True):
    """A named file of the workflow; jobs name it in input_files/output_files."""

    name: str
    path: str


class UserDataDef(msgspec.Struct, frozen=True, kw_only=True):
    """A named piece of user data (any JSON value) jobs may consume or produce."""

    name: str
    data: Any = None
    is_ephemeral: bool = False


class RetryRule(msgspec.Struct, frozen=True, kw_only=True):
    """A torc failure-handler rule: which exit codes are retried, how often, and the
    script that repairs things before the next attempt."""

    exit_codes: tuple[int, ...] = ()
    match_all_exit_codes: bool = False
    recovery_script: str | None = None
    max_retries: int = 3
    delay_s: float = 0.0  # before the first retry; 0: at once
    backoff: float = 2.0  # each further retry waits this many times longer ...
    delay_max_s: float = 3600.0  # ... but never longer than this

    def matches(self, return_code: int) -> bool:
        return self.match_all_exit_codes or return_code in self.exit_codes

    def delay_before(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first) under this rule."""
        if self.delay_s <= 0:
            return 0.0
        try:
            return min(self.delay_s * self.backoff ** (retry - 1), self.delay_max_s)
        except OverflowError:
            return self.delay_max_s


def retry_rule_for(
    rules: tuple[RetryRule, ...], return_code: int, retries: dict[int, int]
) -> int | None:
    """Index of the first rule that matches the return code and has retries left.

    ``retries`` counts earlier retries per rule index. A success (0) is never retried; a
    code no rule names fails the job.
    """
    if return_code == 0:
        return None
    for index, rule in enumerate(rules):
        if rule.matches(return_code):
            return index if retries.get(index, 0) < rule.max_retries else None
    return None


class JobDef(msgspec.Struct, frozen=True, kw_only=True):
    """One expanded job: no parameters, no templates, dependencies as job indexes."""

    index: int
    name: str
    command: str
    resources: Resources = Resources()
    resource_requirements: str | None = None
    invocation_script: str | None = None
    env: dict[str, str] = {}
    priority: int = 0
    depends_on: tuple[int, ...] = ()
    input_files: tuple[str, ...] = ()
    output_files: tuple[str, ...] = ()
    input_user_data: tuple[str, ...] = ()
    output_user_data: tuple[str, ...] = ()
    failure_handler: str | None = None
    retry_rules: tuple[RetryRule, ...] = ()
    cancel_on_blocking_job_failure: bool = True
    pool: str = DEFAULT_POOL


class WorkflowDef(msgspec.Struct, frozen=True, kw_only=True):
    """A fully expanded workflow, ready to submit.

    ``extras`` keeps the torc sections jobstream stores but does not act on yet
    (actions, failure_handlers, slurm_schedulers, resource_monitor, metadata, project)
    so nothing a user wrote is silently dropped.
    """

    name: str
    description: str = ""
    user: str = ""
    jobs: tuple[JobDef, ...] = ()
    files: tuple[FileDef, ...] = ()
    user_data: tuple[UserDataDef, ...] = ()
    resource_requirements: dict[str, Resources] = {}
    extras: dict[str, Any] = {}

    def edges(self) -> int:
        """Number of dependency edges (job → job)."""
        return sum(len(j.depends_on) for j in self.jobs)

    def hardware_classes(self) -> dict[str, int]:
        """Jobs per hardware class, for summaries and capacity checks."""
        counts: dict[str, int] = {}
        for job in self.jobs:
            key = job.resources.hardware_class()
            counts[key] = counts.get(key, 0) + 1
        return counts


class JobState(enum.StrEnum):
    """Every state a job can be in; see ``jobstream.decide`` for the transitions."""

    SUBMITTED = "submitted"
    BLOCKED = "blocked"
    READY = "ready"
    CLAIMED = "claimed"
    RUNNING = "running"
    RETRYING = "retrying"  # an attempt failed, a failure-handler rule will run it again
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"


TERMINAL: frozenset[JobState] = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELED}
)
UNSUCCESSFUL: frozenset[JobState] = TERMINAL - {JobState.COMPLETED}


class WorkItem(msgspec.Struct, frozen=True, kw_only=True):
    """A WORK message: one dispatch of a ready job, everything a worker needs to run it.

    ``ready_seq`` is the stream sequence of the JobReady event it dispatches; a worker
    claims against it (CAS), so a stale or duplicate dispatch can never run twice.
    """

    wf: str
    job: int
    ready_seq: int
    attempts_before: int = 0
    retries: dict[int, int] = {}  # earlier retries per rule index
    workdir: str
    spec: JobDef


class JobNotice(msgspec.Struct, frozen=True, kw_only=True):
    """A job named to the worker holding it: it was canceled (the event is the fact), or
    another worker asks whether it still holds it (a lease probe)."""

    wf: str
    job: int


class WorkerState(enum.StrEnum):
    """What a worker says of itself in its heartbeat. A heartbeat that stopped coming is
    no state of its own: readers tell it by its age (``views/workers``)."""

    RUNNING = "running"
    STOPPING = "stopping"  # takes no more work; its jobs finish or are terminated
    STOPPED = "stopped"  # its last heartbeat, written on a clean stop


class RunningJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job a worker's process runs now (``started_at``: wall-clock seconds)."""

    wf: str
    job: int
    attempt: int
    started_at: float


class WorkerHeartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's entry in the WORKERS bucket (key: its id), put every few seconds.

    Not an event: it is the worker's current condition, which nobody folds, and one key
    per worker keeps only the latest. Times are wall-clock seconds; ``*_used`` is what
    its running jobs reserve; ``held`` counts the dispatches it holds, running or not;
    the next entry is due ``interval_s`` after this one.
    """

    id: str
    host: str
    pid: int
    pools: tuple[str, ...]
    capacity: Resources
    cpus_used: int = 0
    memory_used_mib: int = 0
    gpus_used: int = 0
    running: tuple[RunningJob, ...] = ()
    held: int = 0
    jobs_run: int = 0
    started_at: float
    heartbeat_at: float
    interval_s: float
    walltime_end: float | None = None
    state: WorkerState = WorkerState.RUNNING
