"""What the read side hands out: one job's record, one workflow's status.

The projector writes both to the JOBS bucket (``<wf>.<n>`` and ``<wf>.wf``); ``status``,
``watch``, progress bars and the Python client read them there. The audit fold of the log
(:mod:`jobstream.views.audit`) gives the same :class:`WorkflowStatus`, so the two can be
compared; the ``workflows`` table is the same facts as SQL.
"""

from __future__ import annotations

from typing import Any

import msgspec

from jobstream.model import TERMINAL, JobState

DONE = tuple(state.value for state in JobState if state in TERMINAL)


class JobRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A job's latest state (``seq``: the last event it reflects)."""

    wf: str
    job: int
    state: str
    attempt: int
    worker: str | None
    updated_at: float
    seq: int


class JobProblem(msgspec.Struct, frozen=True):
    """A job that did not complete: why, and where to look."""

    job: int
    name: str
    state: str
    return_code: int | None
    reason: str
    stderr_tail: str
    stderr: str


class WorkflowStatus(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A workflow as people see it: jobs per state (states with none left out) and
    whether it has finished; ``problems`` (never stored) are the jobs that did not
    complete, when someone asked for them."""

    wf: str
    name: str
    user: str
    job_count: int
    submitted_at: float
    finished: bool
    counts: dict[str, int]
    seq: int  # the last event it reflects (0: not known)
    problems: list[JobProblem] = []

    @property
    def succeeded(self) -> bool:
        return self.finished and self.counts.get(JobState.COMPLETED.value, 0) == self.job_count

    def done(self) -> int:
        """Jobs in a terminal state."""
        return sum(self.counts.get(state, 0) for state in DONE)

    def as_json(self) -> dict[str, Any]:
        """The stable ``--json`` shape: every state counted, zeros included."""
        return {
            "workflow": self.wf,
            "name": self.name,
            "user": self.user,
            "jobs": self.job_count,
            "finished": self.finished,
            "succeeded": self.succeeded,
            "counts": all_counts(self.counts),
            "problems": msgspec.to_builtins(self.problems),
        }


def all_counts(counts: dict[str, int]) -> dict[str, int]:
    """Every state, zeros included, in state order."""
    return {state.value: counts.get(state.value, 0) for state in JobState}
