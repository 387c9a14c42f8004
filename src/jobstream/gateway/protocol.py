"""Requests to the submitter service and how answers come back.

A request goes to ``jobstream.api.<user>.<operation>``; the server lets each submitter
publish under their own name only, so that token is who asks. Answers go to the
request's reply subject, which must be the caller's own inbox (``_INBOX.<user>.…``):
the service never publishes where a caller points it otherwise (a reply subject is the
caller's to choose, and the service may publish anywhere). An answer is one or more
messages: JSON, with ``Jobstream-More: 1`` on all but the last, or one message with a
``Jobstream-Error`` header.
"""

from __future__ import annotations

import msgspec

from jobstream.model import JobDef
from jobstream.streams.subjects import API_PREFIX, inbox_prefix

MORE_HEADER = "Jobstream-More"
OPERATIONS = ("open", "jobs", "cancel", "restart", "events", "explain", "status", "sql")


class SubmitJobs(msgspec.Struct, frozen=True):
    """Some jobs of a workflow the caller opened (``open`` takes its WorkflowSubmitted)."""

    wf: str
    jobs: list[JobDef]


class CancelJobs(msgspec.Struct, frozen=True):
    wf: str
    jobs: list[int] | None = None
    reason: str = "canceled by user"


class ReadEvents(msgspec.Struct, frozen=True):
    wf: str
    job: int | None = None


class OneWorkflow(msgspec.Struct, frozen=True):
    wf: str


class ExplainJob(msgspec.Struct, frozen=True):
    wf: str
    job: str  # index or name


class ReadStatus(msgspec.Struct, frozen=True):
    wf: str | None = None


class RunSql(msgspec.Struct, frozen=True):
    sql: str


def operation_subject(user: str, operation: str) -> str:
    return f"{API_PREFIX}.{user}.{operation}"


def caller_of(subject: str) -> tuple[str, str] | None:
    """(user, operation) of a request's subject (the operation may be unknown); None for
    any other subject."""
    parts = subject.split(".")
    if len(parts) == 4 and f"{parts[0]}.{parts[1]}" == API_PREFIX:
        return parts[2], parts[3]
    return None


def may_answer(user: str, reply: str) -> bool:
    """Whether ``reply`` is ``user``'s own inbox (the only place answers go)."""
    return reply.startswith(f"{inbox_prefix(user)}.")
