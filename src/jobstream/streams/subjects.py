"""Names of streams, buckets and subjects: the one place that spells them.

Names and dots in job names never reach a subject: jobs are addressed by workflow id
and index, work by pool and hardware class. An event's kind is its subject's last token
(``ev.<wf>.job.<n>.JobClaimed``) so that the server's subject permissions can say who
may append which kind (docs/security.md); an aggregate's history is the wildcard over
its kinds (``ev.<wf>.job.<n>.*``), and optimistic concurrency is taken over that
wildcard (:data:`EXPECTED_LAST_SUBJECT`). The subjects of NATS's and JetStream's own
APIs that jobstream calls without nats-py are here too.
"""

from __future__ import annotations

import re

from jobstream.errors import ConfigError
from jobstream.events import (
    Event,
    JobEvent,
    SlurmAllocationEvent,
    WorkerLost,
    WorkerStarted,
    WorkerStopped,
    WorkflowEvent,
)

EVENTS_STREAM = "EVENTS"
WORK_STREAM = "WORK"
LOGS_BUCKET = "LOGS"
LEASES_BUCKET = "LEASES"  # key-value: which server is active for each role
SNAPSHOTS_BUCKET = "SNAPSHOTS"  # object store: each scheduler partition's state at a sequence
ARCHIVE_BUCKET = "ARCHIVE"  # object store: archived workflows' events, one Parquet each
JOBS_BUCKET = "JOBS"  # key-value: the latest state of every job and workflow
JOBS_BUCKET_STREAM = f"KV_{JOBS_BUCKET}"
WORKERS_BUCKET = "WORKERS"  # key-value: each worker's latest heartbeat, by worker id
ALL_EVENTS = "ev.>"
ALL_WORK = "work.>"
EVENTS_SUBJECTS = [ALL_EVENTS]
WORK_SUBJECTS = [ALL_WORK]
# The projector's request/reply services (a queue group: one projector answers).
SQL_SUBJECT = "jobstream.sql"
SQL_PING_SUBJECT = "jobstream.sql.ping"
REBUILD_SUBJECT = "jobstream.rebuild"
ARCHIVE_SUBJECT = "jobstream.archive"  # ask the projector to archive a workflow now
API_PREFIX = "jobstream.api"  # the submitter service: jobstream.api.<user>.<operation>
# The header that widens Nats-Expected-Last-Subject-Sequence to a filter (nats-server 2.11+).
EXPECTED_LAST_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
# Stream metadata naming the subject layout a store was written with.
LAYOUT_KEY = "jobstream.layout"
LAYOUT = "2"  # 1: ev.<wf>.job.<n> without the kind (before issue 22)
ACK_PREFIX = "$JS.ACK"  # JetStream reply subjects of delivered messages start so


WORKFLOW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
NOT_WORKFLOWS = ("worker", "slurm")  # the second token of workers' and allocations' events


def checked_workflow(wf: str) -> str:
    """A workflow id as a user gave it, refused unless it is one subject token: ``*``,
    ``>`` or a ``.`` would make a filter over other workflows (a read of everyone's
    history, an archive and purge of all of them)."""
    if not WORKFLOW_ID.fullmatch(wf):
        raise ConfigError(f"{wf!r} is not a workflow id (letters, digits, - and _ only)")
    if wf in NOT_WORKFLOWS:
        raise ConfigError(f"{wf!r} is not a workflow id (ev.{wf}.> holds other events)")
    return wf


def workflow_subjects(wf: str) -> str:
    """Every subject of workflow-level events (submitted, completed): a filter."""
    return f"ev.{checked_workflow(wf)}.wf.*"


def all_workflows_filter() -> str:
    """Every workflow's workflow-level events (never a job's, worker's or allocation's)."""
    return "ev.*.wf.*"


def workflow_event_subject(wf: str, kind: str) -> str:
    """The subject of one kind of a workflow's own events, e.g. ``ev.<wf>.wf.WorkflowArchived``."""
    return f"ev.{checked_workflow(wf)}.wf.{kind}"


def job_subjects(wf: str, job: int) -> str:
    """Every subject of one job's history, the aggregate's own events: a filter."""
    return f"ev.{wf}.job.{job}.*"


def job_event_subject(wf: str, job: int, kind: str) -> str:
    """The subject of one kind of a job's events, e.g. ``ev.<wf>.job.3.JobStarted``."""
    return f"ev.{wf}.job.{job}.{kind}"


def worker_subjects(worker: str) -> str:
    """Every subject of one worker's lifecycle events: a filter."""
    return f"ev.worker.{worker}.*"


def cancel_notice_subject(worker: str) -> str:
    """Core-NATS subject telling one worker that a job it holds was canceled.

    Only a nudge for promptness: the JobCanceled on the job's subject is the fact, and a
    worker that misses the nudge finds it at its next lease check.
    """
    return f"ctl.worker.{worker}.cancel"


def lease_probe_subject(worker: str) -> str:
    """Core-NATS subject where one worker answers whether it holds a job (and renews its
    lease): asked before a redelivered dispatch is taken from it."""
    return f"ctl.worker.{worker}.holds"


def allocation_subjects(allocation: str) -> str:
    """Every subject of one Slurm allocation's events: a filter."""
    return f"ev.slurm.{allocation}.*"


def allocations_filter() -> str:
    """Filter matching every Slurm allocation's events."""
    return allocation_subjects("*")


def job_of(subject: str) -> tuple[str, int] | None:
    """(workflow id, job index) of a job event's subject; None for any other subject."""
    parts = subject.split(".")
    if len(parts) == 5 and parts[0] == "ev" and parts[2] == "job" and parts[3].isdigit():
        return parts[1], int(parts[3])
    return None


def workflow_filter(wf: str) -> str:
    """Filter matching every event of one workflow."""
    return f"ev.{checked_workflow(wf)}.>"


def jobs_filter(wf: str) -> str:
    """Filter matching the events of every job of one workflow."""
    return f"ev.{wf}.job.*.*"


def workers_filter() -> str:
    """Filter matching every worker's lifecycle events."""
    return worker_subjects("*")


def aggregate_subjects(event: Event) -> str:
    """The filter over the history ``event`` belongs to (its job's, workflow's or
    worker's): where its optimistic concurrency is checked."""
    if isinstance(event, JobEvent):
        return job_subjects(event.wf, event.job)
    if isinstance(event, WorkflowEvent):
        return workflow_subjects(event.wf)
    if isinstance(event, WorkerStarted | WorkerStopped | WorkerLost):
        return worker_subjects(event.worker)
    if isinstance(event, SlurmAllocationEvent):
        return allocation_subjects(event.allocation)
    raise TypeError(f"no subject for {type(event).__name__}")


def event_subject(event: Event) -> str:
    """The subject an event is stored under: its history's, with its kind last."""
    return f"{aggregate_subjects(event)[:-1]}{type(event).__name__}"


def kind_filter(kind: type[Event]) -> str:
    """Every subject of one kind of event, whoever's (what a permission names)."""
    if issubclass(kind, JobEvent):
        return f"ev.*.job.*.{kind.__name__}"
    if issubclass(kind, WorkflowEvent):
        return f"ev.*.wf.{kind.__name__}"
    if issubclass(kind, SlurmAllocationEvent):
        return f"ev.slurm.*.{kind.__name__}"
    return f"ev.worker.*.{kind.__name__}"


def inbox_prefix(user: str | None) -> str:
    """Where a connection's replies come: one prefix per user, so that the server can
    let each see only its own."""
    return f"_INBOX.{user}" if user else "_INBOX"


def api_subjects(user: str) -> str:
    """The submitter service's requests from one user: the token is the caller's name,
    which the server's permissions vouch for."""
    return f"{API_PREFIX}.{user}.>"


def control_subjects() -> str:
    """Every worker's core-NATS control subjects (notices, lease probes)."""
    return "ctl.worker.>"


def worker_api_subjects() -> list[str]:
    """The JetStream API subjects a worker calls, and nothing that creates, changes or
    deletes a stream: what a compute identity is allowed (host/users.py)."""
    api, objects = "$JS.API", f"OBJ_{LOGS_BUCKET}"
    reads = [
        f"{api}.{call}.{stream}{rest}"
        for stream in (EVENTS_STREAM, objects)
        for call, rest in (("DIRECT.GET", ""), ("DIRECT.GET", ".>"), ("STREAM.MSG.GET", ""))
    ]
    return [
        *reads,
        f"{ACK_PREFIX}.{WORK_STREAM}.>",  # acks and lease renewals of dispatches
        f"$O.{LOGS_BUCKET}.>",  # writing job logs
        kv_subject(WORKERS_BUCKET, ">"),  # heartbeats
        f"{api}.INFO",
        f"{api}.STREAM.NAMES",
        f"{api}.STREAM.INFO.*",
        f"{api}.CONSUMER.LIST.{WORK_STREAM}",
        f"{api}.CONSUMER.INFO.{WORK_STREAM}.*",
        pull_subject(WORK_STREAM, "*"),
        # Reading the log through consumers of its own (ordered, or the bulk reader's).
        f"{api}.CONSUMER.CREATE.{EVENTS_STREAM}",
        f"{api}.CONSUMER.CREATE.{EVENTS_STREAM}.>",
        f"{api}.CONSUMER.INFO.{EVENTS_STREAM}.*",
        f"{api}.CONSUMER.DELETE.{EVENTS_STREAM}.*",
        pull_subject(EVENTS_STREAM, "*"),
        f"$JS.FC.{EVENTS_STREAM}.>",
    ]


def class_subject(pool: str, hardware_class: str) -> str:
    """WORK subject of one pool's hardware class, e.g. ``work.default.c1.m1024.g0.n1.t3600``."""
    return f"work.{pool}.{hardware_class}"


def consumer_created_subject(stream: str) -> str:
    """Core-NATS subject of the server's advisories: a consumer of ``stream`` was created."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.CREATED.{stream}.*"


def class_consumer(pool: str, hardware_class: str) -> str:
    """Durable consumer name of a class (consumer names may not contain dots)."""
    return f"cls_{pool}_{hardware_class.replace('.', '_')}"


def log_object(wf: str, job: int, attempt: int, stream: str) -> str:
    """LOGS object name of one attempt's stdout or stderr."""
    return f"{wf}/{job}/{attempt}/{stream}"


def kv_stream(bucket: str) -> str:
    """The stream that holds a KV bucket."""
    return f"KV_{bucket}"


def kv_subject(bucket: str, key: str) -> str:
    """The subject a KV put of ``key`` is a publish on (a key may be a pattern)."""
    return f"$KV.{bucket}.{key}"


def stream_api_subject(call: str) -> str:
    """JetStream's stream API, e.g. ``INFO.<stream>`` (for fields nats-py drops)."""
    return f"$JS.API.STREAM.{call}"


def direct_get_subject(stream: str) -> str:
    """Where direct gets of a stream's messages are asked (``allow_direct``)."""
    return f"$JS.API.DIRECT.GET.{stream}"


def pull_subject(stream: str, consumer: str) -> str:
    """Where pull requests for a consumer's next messages go."""
    return f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"


def bulk_inbox(user: str | None, token: str) -> str:
    """The inbox a bare-socket reader subscribes to for its pull requests' answers."""
    return f"{inbox_prefix(user)}.bulk.{token}"
