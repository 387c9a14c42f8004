"""``jobs``: one row per job with its current state and the facts of its latest attempt."""

from __future__ import annotations

from jobstream.decide import STATE_BY_EVENT
from jobstream.model import HARDWARE_CLASS_FIELDS
from jobstream.projections.model import ENDINGS, ReadModel, latest, state_case, ts, types

SUBMITTED = "JobSubmitted"
RESOURCES = "spec.resources"
HARDWARE_CLASS = " || '.' || ".join(  # as Resources.hardware_class(); NULL without a spec
    f"'{letter}' || {RESOURCES}.{field}" for letter, field in HARDWARE_CLASS_FIELDS.items()
)
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
    # Values are aggregated raw and turned into columns after grouping: a job has five
    # or more events in a batch, and only the last value of each is kept.
    fold=f"""
        SELECT wf, job, spec.name, {state_case("last_type")}, attempt, worker, host,
               spec.command, spec.pool, {HARDWARE_CLASS},
               {RESOURCES}.num_cpus, {RESOURCES}.memory_mib, {RESOURCES}.num_gpus,
               {RESOURCES}.runtime_s, spec.priority,
               '[' || array_to_string(spec.depends_on, ',') || ']',
               {ts("submitted")}, {ts("ready")}, {ts("claimed")}, {ts("started")},
               {ts("ended")}, return_code, exec_time_s, reason, {ts("updated")}, last_seq
        FROM (
            SELECT e.wf AS wf, e.job AS job, {latest("e.spec", SUBMITTED)} AS spec,
                   arg_max(e.type, seq) AS last_type,
                   {
        latest("CASE e.type WHEN 'JobSubmitted' THEN 0 ELSE e.attempt END", SUBMITTED, "JobClaimed")
    } AS attempt,
                   {latest("e.worker", "JobClaimed")} AS worker,
                   {latest("e.host", "JobStarted")} AS host,
                   {latest("e.at", SUBMITTED)} AS submitted,
                   {latest("e.at", "JobReady")} AS ready,
                   {latest("e.at", "JobClaimed")} AS claimed,
                   {latest("e.at", "JobStarted")} AS started,
                   {latest("e.at", *ENDINGS, "JobCanceled")} AS ended,
                   {latest("e.return_code", *ENDINGS)} AS return_code,
                   {latest("e.exec_time_s", *ENDINGS)} AS exec_time_s,
                   {latest("e.reason", "JobCanceled")} AS reason,
                   arg_max(e.at, seq) AS updated, max(seq) AS last_seq
            FROM batch WHERE e.type IN ({types(*STATE_BY_EVENT)})
            GROUP BY e.wf, e.job
        )
    """,
)
