"""What a person is told about a workflow: counts per state and the jobs that did not
complete. Built from the KV record (counts) and the read models (details) — or, for
audits and tests, from the log itself (``jobstream.progress``), in the same shape."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from jobstream.model import JobState
from jobstream.projections.kv import WorkflowRecord

PROBLEM_LIMIT = 50
_WF_ID = re.compile(r"[0-9a-z]{1,64}\Z")


class JobProblem(msgspec.Struct, frozen=True):
    """A job that did not complete: why, and where to look."""

    job: int
    name: str
    state: str
    return_code: int | None
    reason: str
    stderr_tail: str
    stderr: str


class Summary(msgspec.Struct, frozen=True):
    """The stable ``--json`` shape of one workflow's status."""

    workflow: str
    name: str
    user: str
    jobs: int
    finished: bool
    succeeded: bool
    counts: dict[str, int]
    problems: list[JobProblem]

    def done(self) -> int:
        return sum(self.counts[s] for s in ("completed", "failed", "timed_out", "canceled"))


def all_counts(counts: dict[str, int]) -> dict[str, int]:
    """Every state, zeros included, in state order."""
    return {state.value: counts.get(state.value, 0) for state in JobState}


def summary_of(record: WorkflowRecord, problems: list[JobProblem]) -> Summary:
    counts = all_counts(record.counts)
    succeeded = record.finished and counts["completed"] == record.job_count
    return Summary(
        workflow=record.wf,
        name=record.name,
        user=record.user,
        jobs=record.job_count,
        finished=record.finished,
        succeeded=succeeded,
        counts=counts,
        problems=problems,
    )


def problems_sql(wf: str) -> str:
    """Jobs of ``wf`` that did not complete, with their latest attempt's details."""
    if not _WF_ID.match(wf):
        raise ValueError(f"not a workflow id: {wf!r}")
    return f"""
        SELECT j.job, j.name, j.state, a.return_code, coalesce(j.cancel_reason, '') AS reason,
               coalesce(a.stderr_tail, '') AS stderr_tail, coalesce(a.stderr, '') AS stderr
        FROM jobs j LEFT JOIN attempts a
          ON a.wf = j.wf AND a.job = j.job AND a.attempt = j.attempt
        WHERE j.wf = '{wf}' AND j.state <> 'completed'
        ORDER BY j.job LIMIT {PROBLEM_LIMIT}
    """


def problems_from_rows(rows: list[dict[str, Any]]) -> list[JobProblem]:
    return [msgspec.convert(row, JobProblem) for row in rows]
