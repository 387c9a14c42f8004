"""Per-workflow status folded straight from the log: the audit view.

Status and progress bars read the JOBS bucket; this fold of the events themselves (with
the same ``evolve`` the scheduler uses) is what they are checked against, and what waits
for a workflow where no projector runs.
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
from jobstream.summary import PROBLEM_LIMIT, JobProblem, Summary


@dataclass
class WorkflowStatus:
    wf: str
    name: str = ""
    user: str = ""
    submitted_at: float = 0.0
    job_count: int = 0
    finished: bool = False
    jobs: dict[int, Job] = field(default_factory=dict)
    last_end: dict[int, AttemptEnded | JobCanceled] = field(default_factory=dict)

    def apply(self, event: Event) -> None:
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
        """Jobs per state, every state listed (zeros included) for stable --json output."""
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
            name = job.spec.name if job.spec else str(n)
            found.append(
                JobProblem(
                    job=n,
                    name=name,
                    state=job.state.value if job.state else "unknown",
                    return_code=ended.return_code if isinstance(ended, AttemptEnded) else None,
                    reason=ended.reason if isinstance(ended, JobCanceled) else "",
                    stderr=ended.stderr if isinstance(ended, AttemptEnded) else "",
                    stderr_tail=ended.stderr_tail if isinstance(ended, AttemptEnded) else "",
                )
            )
        return found

    def summary(self) -> Summary:
        """The same shape as the KV-based summary, from the log alone."""
        return Summary(
            workflow=self.wf,
            name=self.name,
            user=self.user,
            jobs=self.job_count,
            finished=self.finished,
            succeeded=self.succeeded(),
            counts=self.counts(),
            problems=self.problems()[:PROBLEM_LIMIT],
        )
