"""``jobs``: one row per job with its current state and the facts of its latest attempt."""

from __future__ import annotations

from jobstream.decide import STATE_BY_EVENT
from jobstream.projections.model import ENDINGS, ReadModel, latest, state_case, ts, types

SUBMITTED = "JobSubmitted"
RESOURCES = "e.spec.resources"

MODEL = ReadModel(
    name="jobs",
    columns={
        "wf": "VARCHAR",
        "job": "INTEGER",
        "name": "VARCHAR",
        "state": "VARCHAR",
        "attempt": "INTEGER",
        "worker": "VARCHAR",
        "host": "VARCHAR",
        "command": "VARCHAR",
        "pool": "VARCHAR",
        "hardware_class": "VARCHAR",
        "num_cpus": "INTEGER",
        "memory_mib": "BIGINT",
        "num_gpus": "INTEGER",
        "runtime_s": "BIGINT",
        "priority": "INTEGER",
        "depends_on": "VARCHAR",
        "submitted_at": "TIMESTAMP",
        "ready_at": "TIMESTAMP",
        "claimed_at": "TIMESTAMP",
        "started_at": "TIMESTAMP",
        "ended_at": "TIMESTAMP",
        "return_code": "INTEGER",
        "exec_time_s": "DOUBLE",
        "cancel_reason": "VARCHAR",
        "updated_at": "TIMESTAMP",
        "last_seq": "BIGINT",
    },
    reads=frozenset(STATE_BY_EVENT),
    key=("wf", "job"),
    fold=f"""
        SELECT e.wf, e.job,
               {latest("e.spec.name", SUBMITTED)},
               arg_max({state_case()}, seq),
               {
        latest("CASE e.type WHEN 'JobSubmitted' THEN 0 ELSE e.attempt END", SUBMITTED, "JobClaimed")
    },
               {latest("e.worker", "JobClaimed")}, {latest("e.host", "JobStarted")},
               {latest("e.spec.command", SUBMITTED)}, {latest("e.spec.pool", SUBMITTED)},
               {
        latest(
            f"printf('c%d.m%d.g%d.n%d.t%d', {RESOURCES}.num_cpus, "
            f"{RESOURCES}.memory_mib, {RESOURCES}.num_gpus, "
            f"{RESOURCES}.num_nodes, {RESOURCES}.runtime_s)",
            SUBMITTED,
        )
    },
               {latest(f"{RESOURCES}.num_cpus", SUBMITTED)},
               {latest(f"{RESOURCES}.memory_mib", SUBMITTED)},
               {latest(f"{RESOURCES}.num_gpus", SUBMITTED)},
               {latest(f"{RESOURCES}.runtime_s", SUBMITTED)},
               {latest("e.spec.priority", SUBMITTED)},
               {latest("to_json(e.spec.depends_on)::VARCHAR", SUBMITTED)},
               {latest(ts(), SUBMITTED)}, {latest(ts(), "JobReady")},
               {latest(ts(), "JobClaimed")}, {latest(ts(), "JobStarted")},
               {latest(ts(), *ENDINGS, "JobCanceled")},
               {latest("e.return_code", *ENDINGS)}, {latest("e.exec_time_s", *ENDINGS)},
               {latest("e.reason", "JobCanceled")},
               arg_max({ts()}, seq), max(seq)
        FROM batch WHERE e.type IN ({types(*STATE_BY_EVENT)})
        GROUP BY e.wf, e.job
    """,
)
