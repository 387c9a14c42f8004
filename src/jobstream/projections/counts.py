"""Jobs per state per workflow, kept up to date by each batch's own changes.

A workflow's KV record carries its job counts per state. Counting the workflow's jobs at
every commit would cost time in proportion to its size, twice a second while live;
instead, the states of the batch's jobs are noted before the fold and the difference is
added after it, in the same transaction: a commit costs the same at ten jobs as at a
million.
"""

from __future__ import annotations

TABLE = "job_counts"
DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} "
    "(wf VARCHAR, state VARCHAR, jobs BIGINT NOT NULL, PRIMARY KEY (wf, state))"
)
# A file written before the table existed: its counts, once, when the table is made.
FILL = f"INSERT INTO {TABLE} SELECT wf, state, count(*) FROM jobs GROUP BY ALL"


def _states_of(touched_jobs: str) -> str:
    return (
        f"SELECT j.wf, j.state FROM jobs j JOIN ({touched_jobs}) t ON j.wf = t.wf AND j.job = t.job"
    )


def note_prior(touched_jobs: str) -> str:
    """Keep the current states of the jobs the batch touches, before it is folded."""
    return f"CREATE OR REPLACE TEMP TABLE prior_states AS {_states_of(touched_jobs)}"


def add_changes(touched_jobs: str) -> str:
    """Add to the counts what the fold changed: +1 for each new state, -1 for each prior."""
    return f"""
        INSERT INTO {TABLE}
        SELECT wf, state, sum(change) FROM (
            SELECT wf, state, 1 AS change FROM ({_states_of(touched_jobs)})
            UNION ALL SELECT wf, state, -1 FROM prior_states
        ) GROUP BY ALL HAVING sum(change) <> 0
        ON CONFLICT (wf, state) DO UPDATE SET jobs = {TABLE}.jobs + EXCLUDED.jobs
    """


def of_workflows(workflows: str) -> str:
    """(wf, state, jobs) of these workflows' states that have jobs."""
    return f"SELECT wf, state, jobs FROM {TABLE} WHERE wf IN ({workflows}) AND jobs > 0"
