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
    # As in ``jobs``: raw values are aggregated, and made into columns after grouping.
    fold=f"""
        SELECT wf, job, attempt, worker, host, pid, array_to_string(gpu_ids, ','), lease_s,
               {ts("claimed")}, {ts("started")}, {ts("ended")},
               CASE end_type WHEN 'JobLost' THEN 'lost' ELSE {state_case("end_type")} END,
               return_code, exec_time_s, peak_memory_mib, cpu_time_s, stdout, stderr,
               stderr_tail
        FROM (
            SELECT e.wf AS wf, e.job AS job, e.attempt AS attempt, arg_max(e.worker, seq) AS worker,
                   {latest("e.host", "JobStarted")} AS host, {latest("e.pid", "JobStarted")} AS pid,
                   {latest("e.gpu_ids", "JobStarted")} AS gpu_ids,
                   {latest("e.lease_s", "JobClaimed")} AS lease_s,
                   {latest("e.at", "JobClaimed")} AS claimed,
                   {latest("e.at", "JobStarted")} AS started,
                   {latest("e.at", *ENDINGS, "JobLost")} AS ended,
                   {latest("e.type", *ENDINGS, "JobLost")} AS end_type,
                   {latest("e.return_code", *ENDINGS)} AS return_code,
                   {latest("e.exec_time_s", *ENDINGS)} AS exec_time_s,
                   {latest("e.peak_memory_mib", *ENDINGS)} AS peak_memory_mib,
                   {latest("e.cpu_time_s", *ENDINGS)} AS cpu_time_s,
                   {latest("e.stdout", *ENDINGS)} AS stdout,
                   {latest("e.stderr", *ENDINGS)} AS stderr,
                   {latest("e.stderr_tail", *ENDINGS)} AS stderr_tail
            FROM batch WHERE e.type IN ({types("JobClaimed", "JobStarted", "JobLost", *ENDINGS)})
            GROUP BY e.wf, e.job, e.attempt
        )
    """,
)
