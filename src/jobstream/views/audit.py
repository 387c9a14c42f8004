"""A workflow's status folded straight from the log: the audit view.

Status and progress bars read the JOBS bucket; this fold of the events themselves (with
the same ``evolve`` the scheduler uses) gives the same :class:`WorkflowStatus`, to check
them against, and waits for a workflow where no projector runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobstream.decide import Job, evolve
from jobstream.events import (
    AttemptEnded,
    Event,
    JobCanceled,
    JobEvent,
    JobSubmitted,
    WorkflowCompleted,
    WorkflowRestarted,
    WorkflowSubmitted,
)
from jobstream.model import UNSUCCESSFUL, JobState
from jobstream.projections.records import JobProblem, WorkflowStatus
from jobstream.streams.connection import Connection
from jobstream.streams.store import Stored
from jobstream.views.history import history
from jobstream.views.status import PROBLEM_LIMIT


@dataclass
class WorkflowAudit:
    """The fold: every job with ``evolve``, and how each job's last attempt ended."""

    wf: str
    name: str = ""
    user: str = ""
    submitted_at: float = 0.0
    job_count: int = 0
    finished: bool = False
    seq: int = 0
    jobs: dict[int, Job] = field(default_factory=dict)
    last_end: dict[int, AttemptEnded | JobCanceled] = field(default_factory=dict)

    def apply(self, event: Event, seq: int = 0) -> None:
        """Fold one event (``seq``: its stream sequence, where known)."""
        self.seq = max(self.seq, seq)
        if isinstance(event, WorkflowSubmitted):
            self.name, self.user, self.job_count = event.name, event.user, event.job_count
            self.submitted_at = event.at
        elif isinstance(event, WorkflowCompleted | WorkflowRestarted):
            self.finished = isinstance(event, WorkflowCompleted)
        elif isinstance(event, JobEvent):
            job = self.jobs.get(event.job) or Job(wf=event.wf, index=event.job)
            self.jobs[event.job] = evolve(job, event)
            if isinstance(event, AttemptEnded | JobCanceled):
                self.last_end[event.job] = event
            elif isinstance(event, JobSubmitted):
                self.last_end.pop(event.job, None)

    def counts(self) -> dict[str, int]:
        """Jobs per state, every state listed (zeros included)."""
        counts = {state.value: 0 for state in JobState}
        for job in self.jobs.values():
            assert job.state is not None
            counts[job.state.value] += 1
        return counts

    def succeeded(self) -> bool:
        return self.finished and all(j.state is JobState.COMPLETED for j in self.jobs.values())

    def problems(self) -> list[JobProblem]:
        """Jobs that failed, timed out, were canceled, or are stuck behind those."""
        found = []
        for n, job in sorted(self.jobs.items()):
            if job.state is JobState.COMPLETED or (
                job.state not in UNSUCCESSFUL and not self.finished
            ):
                continue
            ended = self.last_end.get(n)
            attempt = ended if isinstance(ended, AttemptEnded) else None
            found.append(
                JobProblem(
                    job=n,
                    name=job.spec.name if job.spec else str(n),
                    state=job.state.value if job.state else "unknown",
                    return_code=attempt.return_code if attempt else None,
                    reason=ended.reason if isinstance(ended, JobCanceled) else "",
                    stderr_tail=attempt.stderr_tail if attempt else "",
                    stderr=attempt.stderr if attempt else "",
                )
            )
        return found

    def summary(self) -> WorkflowStatus:
        """The same status the JOBS bucket holds, from the log alone, with problems."""
        return WorkflowStatus(
            wf=self.wf,
            name=self.name,
            user=self.user,
            job_count=self.job_count,
            submitted_at=self.submitted_at,
            finished=self.finished,
            counts={state: n for state, n in self.counts().items() if n},
            seq=self.seq,
            problems=self.problems()[:PROBLEM_LIMIT],
        )


async def wait_in_log(conn: Connection, wf: str) -> WorkflowAudit:
    """Fold the workflow's events (archived or not) until WorkflowCompleted (no projector
    needed)."""
    audit = WorkflowAudit(wf)
    async for batch in history(conn, wf, follow=True):
        for stored in batch:
            if isinstance(stored, Stored):
                audit.apply(stored.event, stored.seq)
        if audit.finished:
            break
    return audit
