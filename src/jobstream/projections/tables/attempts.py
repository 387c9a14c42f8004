"""``attempts``: one row per run of a job: who ran it, when, how it ended, what it used."""

from __future__ import annotations

from jobstream.projections.model import ENDINGS, ReadModel, latest, state_case, ts, types

MODEL = ReadModel(
    name="attempts",
    columns={
        "wf": "VARCHAR",
        "job": "INTEGER",
        "attempt": "INTEGER",
        "worker": "VARCHAR",
        "host": "VARCHAR",
        "pid": "INTEGER",
        "gpu_ids": "VARCHAR",
        "lease_s": "DOUBLE",
        "claimed_at": "TIMESTAMP",
        "started_at": "TIMESTAMP",
        "ended_at": "TIMESTAMP",
        "outcome": "VARCHAR",
        "return_code": "INTEGER",
        "exec_time_s": "DOUBLE",
        "peak_memory_mib": "DOUBLE",
        "cpu_time_s": "DOUBLE",
        "stdout": "VARCHAR",
        "stderr": "VARCHAR",
        "stderr_tail": "VARCHAR",
    },
    reads=frozenset({"JobClaimed", "JobStarted", "JobLost", *ENDINGS}),
    key=("wf", "job", "attempt"),
    fold=f"""
        SELECT e.wf, e.job, e.attempt, arg_max(e.worker, seq),
               {latest("e.host", "JobStarted")}, {latest("e.pid", "JobStarted")},
               {latest("array_to_string(e.gpu_ids, ',')", "JobStarted")},
               {latest("e.lease_s", "JobClaimed")},
               {latest(ts(), "JobClaimed")}, {latest(ts(), "JobStarted")},
               {latest(ts(), *ENDINGS, "JobLost")},
               {
        latest(
            f"CASE e.type WHEN 'JobLost' THEN 'lost' ELSE {state_case()} END", *ENDINGS, "JobLost"
        )
    },
               {latest("e.return_code", *ENDINGS)}, {latest("e.exec_time_s", *ENDINGS)},
               {latest("e.peak_memory_mib", *ENDINGS)}, {latest("e.cpu_time_s", *ENDINGS)},
               {latest("e.stdout", *ENDINGS)}, {latest("e.stderr", *ENDINGS)},
               {latest("e.stderr_tail", *ENDINGS)}
        FROM batch WHERE e.type IN ({types("JobClaimed", "JobStarted", "JobLost", *ENDINGS)})
        GROUP BY e.wf, e.job, e.attempt
    """,
)
