"""``workflows``: one row per workflow: what was submitted, when, and how it ended."""

from __future__ import annotations

from jobstream.projections.model import ReadModel, latest, ts

SUBMITTED, COMPLETED, RESTARTED = "WorkflowSubmitted", "WorkflowCompleted", "WorkflowRestarted"

MODEL = ReadModel(
    name="workflows",
    columns={
        "wf": "VARCHAR",
        "name": "VARCHAR",
        "user": "VARCHAR",
        "description": "VARCHAR",
        "spec_digest": "VARCHAR",
        "job_count": "BIGINT",
        "workdir": "VARCHAR",
        "submitted_at": "TIMESTAMP",
        "completed_at": "TIMESTAMP",
        "restarted_at": "TIMESTAMP",
        "final_counts": "VARCHAR",
        "extras": "VARCHAR",
    },
    reads=frozenset({SUBMITTED, COMPLETED, RESTARTED}),
    key=("wf",),
    fold=f"""
        SELECT e.wf,
               {latest("e.name", SUBMITTED)}, {latest("e.user", SUBMITTED)},
               {latest("e.description", SUBMITTED)}, {latest("e.spec_digest", SUBMITTED)},
               {latest("e.job_count", SUBMITTED)}, {latest("e.workdir", SUBMITTED)},
               {latest(ts(), SUBMITTED)}, {latest(ts(), COMPLETED)}, {latest(ts(), RESTARTED)},
               {latest("e.counts::VARCHAR", COMPLETED)}, {latest("e.extras::VARCHAR", SUBMITTED)}
        FROM batch WHERE e.type IN ('{SUBMITTED}', '{COMPLETED}', '{RESTARTED}')
        GROUP BY e.wf
    """,
)
