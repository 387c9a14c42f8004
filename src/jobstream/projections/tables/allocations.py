"""``allocations``: one row per Slurm allocation: for what, where, when, how it ended."""

from __future__ import annotations

from jobstream.projections.model import ReadModel, latest, own_fields, ts

SUBMITTED, STARTED, ENDED = (
    "SlurmAllocationSubmitted", "SlurmAllocationStarted", "SlurmAllocationEnded",
)  # fmt: skip
FIELDS: dict[str, object] = {
    "allocation": "VARCHAR", "slurm_job_id": "VARCHAR", "scheduler": "VARCHAR",
    "nodes": "INTEGER", "walltime_s": "DOUBLE", "nodes_list": "VARCHAR", "state": "VARCHAR",
}  # fmt: skip

MODEL = ReadModel(
    name="allocations",
    columns={
        "allocation": "VARCHAR",
        "slurm_job_id": "VARCHAR",
        "wf": "VARCHAR",
        "scheduler": "VARCHAR",
        "nodes": "INTEGER",
        "walltime_s": "DOUBLE",
        "submitted_at": "TIMESTAMP",
        "started_at": "TIMESTAMP",
        "nodes_list": "VARCHAR",
        "ended_at": "TIMESTAMP",
        "state": "VARCHAR",
    },
    reads=frozenset({SUBMITTED, STARTED, ENDED}),
    key=("allocation",),
    fold=f"""
        SELECT f.allocation, {latest("f.slurm_job_id", SUBMITTED, STARTED, ENDED)},
               {latest("e.wf", SUBMITTED)}, {latest("f.scheduler", SUBMITTED)},
               {latest("f.nodes", SUBMITTED)}, {latest("f.walltime_s", SUBMITTED)},
               {latest(ts(), SUBMITTED)}, {latest(ts(), STARTED)},
               {latest("f.nodes_list", STARTED)}, {latest(ts(), ENDED)},
               coalesce({latest("f.state", ENDED)}, {latest("'RUNNING'", STARTED)},
                        {latest("'PENDING'", SUBMITTED)})
        FROM {own_fields(FIELDS, SUBMITTED, STARTED, ENDED)}
        GROUP BY f.allocation
    """,
)
