"""Names of streams, buckets and subjects: the one place that spells them.

Names and dots in job names never reach a subject: jobs are addressed by workflow id
and index (``ev.<wf>.job.<n>``); work by pool and hardware class. The subjects of
NATS's and JetStream's own APIs that jobstream calls without nats-py are here too.
"""

from __future__ import annotations

from jobstream.events import (
    Event,
    JobEvent,
    WorkerLost,
    WorkerStarted,
    WorkerStopped,
    WorkflowEvent,
)

EVENTS_STREAM = "EVENTS"
WORK_STREAM = "WORK"
LOGS_BUCKET = "LOGS"
JOBS_BUCKET = "JOBS"  # key-value: the latest state of every job and workflow
JOBS_BUCKET_STREAM = f"KV_{JOBS_BUCKET}"
ALL_EVENTS = "ev.>"
ALL_WORK = "work.>"
EVENTS_SUBJECTS = [ALL_EVENTS]
WORK_SUBJECTS = [ALL_WORK]
# The projector's request/reply services (a queue group: one projector answers).
SQL_SUBJECT = "jobstream.sql"
SQL_PING_SUBJECT = "jobstream.sql.ping"
REBUILD_SUBJECT = "jobstream.rebuild"
ACK_PREFIX = "$JS.ACK"  # JetStream reply subjects of delivered messages start so


def workflow_subject(wf: str) -> str:
    """Subject of workflow-level events (submitted, completed)."""
    return f"ev.{wf}.wf"


def job_subject(wf: str, job: int) -> str:
    """Subject of one job's history: the aggregate's own stream of events."""
    return f"ev.{wf}.job.{job}"


def worker_subject(worker: str) -> str:
    """Subject of one worker's lifecycle events."""
    return f"ev.worker.{worker}"


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


def job_of(subject: str) -> tuple[str, int] | None:
    """(workflow id, job index) of a job's subject; None for any other subject."""
    parts = subject.split(".")
    if len(parts) == 4 and parts[0] == "ev" and parts[2] == "job" and parts[3].isdigit():
        return parts[1], int(parts[3])
    return None


def workflow_filter(wf: str) -> str:
    """Filter matching every event of one workflow."""
    return f"ev.{wf}.>"


def jobs_filter(wf: str) -> str:
    """Filter matching the events of every job of one workflow."""
    return f"ev.{wf}.job.*"


def workers_filter() -> str:
    """Filter matching every worker's lifecycle events."""
    return worker_subject("*")


def event_subject(event: Event) -> str:
    """The subject an event is stored under."""
    if isinstance(event, JobEvent):
        return job_subject(event.wf, event.job)
    if isinstance(event, WorkflowEvent):
        return workflow_subject(event.wf)
    if isinstance(event, WorkerStarted | WorkerStopped | WorkerLost):
        return worker_subject(event.worker)
    raise TypeError(f"no subject for {type(event).__name__}")


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


def kv_subject(bucket: str, key: str) -> str:
    """The subject a KV put of ``key`` is a publish on (a key may be a pattern)."""
    return f"$KV.{bucket}.{key}"


def stream_api_subject(call: str) -> str:
    """JetStream's stream API, e.g. ``INFO.<stream>`` (for fields nats-py drops)."""
    return f"$JS.API.STREAM.{call}"


def pull_subject(stream: str, consumer: str) -> str:
    """Where pull requests for a consumer's next messages go."""
    return f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"


def bulk_inbox(token: str) -> str:
    """The inbox a bare-socket reader subscribes to for its pull requests' answers."""
    return f"_INBOX.bulk.{token}"
