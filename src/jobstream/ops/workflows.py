"""A workflow as submitted: what the operations on its jobs start from."""

from __future__ import annotations

from jobstream.errors import JobstreamError
from jobstream.events import WorkflowArchived, WorkflowSubmitted
from jobstream.streams.store import EventStore
from jobstream.streams.subjects import workflow_subjects


class ArchivedWorkflow(JobstreamError):
    """The workflow is archived: its history is kept, read-only."""

    def __init__(self, wf: str) -> None:
        super().__init__(
            f"workflow {wf} is archived: its history is read-only "
            f"(`jobstream events {wf}`, `jobstream sql`)"
        )


async def submitted_workflow(store: EventStore, wf: str) -> WorkflowSubmitted:
    """The workflow's WorkflowSubmitted; a one-line error naming it if there is none."""
    first = await store.first(workflow_subjects(wf))
    if first is not None and isinstance(first.event, WorkflowArchived):
        raise ArchivedWorkflow(wf)
    if first is None or not isinstance(first.event, WorkflowSubmitted):
        raise JobstreamError(f"no workflow {wf!r} (jobstream status lists them)")
    return first.event
