"""``workflows``: one row per workflow: what was submitted, when, and how it ended."""

from __future__ import annotations

from jobstream.projections.model import ReadModel, latest, own_fields, ts

SUBMITTED, COMPLETED, RESTARTED = "WorkflowSubmitted", "WorkflowCompleted", "WorkflowRestarted"
FIELDS: dict[str, object] = {
    "name": "VARCHAR", "user": "VARCHAR", "description": "VARCHAR", "spec_digest": "VARCHAR",
    "job_count": "BIGINT", "workdir": "VARCHAR", "extras": "JSON", "counts": "JSON",
}  # fmt: skip

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
               {latest("f.name", SUBMITTED)}, {latest("f.user", SUBMITTED)},
               {latest("f.description", SUBMITTED)}, {latest("f.spec_digest", SUBMITTED)},
               {latest("f.job_count", SUBMITTED)}, {latest("f.workdir", SUBMITTED)},
               {latest(ts(), SUBMITTED)}, {latest(ts(), COMPLETED)}, {latest(ts(), RESTARTED)},
               {latest("f.counts::VARCHAR", COMPLETED)}, {latest("f.extras::VARCHAR", SUBMITTED)}
        FROM {own_fields(FIELDS, SUBMITTED, COMPLETED, RESTARTED)}
        GROUP BY e.wf
    """,
)
