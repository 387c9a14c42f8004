"""Names of streams, buckets and subjects: the one place that spells them.

Names and dots in job names never reach a subject: jobs are addressed by workflow id
and index (``ev.<wf>.job.<n>``); work by pool and hardware class.
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
EVENTS_SUBJECTS = ["ev.>"]
WORK_SUBJECTS = ["work.>"]


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


def workflow_filter(wf: str) -> str:
    """Filter matching every event of one workflow."""
    return f"ev.{wf}.>"


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
