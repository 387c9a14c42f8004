"""KV job-state writes against a real server: atomic batches and one-by-one puts agree."""

from __future__ import annotations

import pytest

from jobstream.projections.kv import (
    ATOMIC_BATCH,
    JobRecord,
    WorkflowRecord,
    enable_atomic_puts,
    ensure_bucket,
    job_records,
    put_records,
    workflow_records,
)
from jobstream.streams.connection import Connection


def records(wf: str, jobs: int, state: str) -> list[JobRecord | WorkflowRecord]:
    found: list[JobRecord | WorkflowRecord] = [
        JobRecord(wf=wf, job=n, state=state, attempt=1, worker="w", updated_at=1.0, seq=n)
        for n in range(jobs)
    ]
    summary = WorkflowRecord(
        wf=wf, name=wf, user="u", job_count=jobs, submitted_at=1.0, finished=False,
        counts={state: jobs}, seq=jobs,
    )  # fmt: skip
    return [*found, summary]


@pytest.mark.parametrize("atomic", [True, False])
async def test_every_record_is_stored_and_the_last_write_wins(
    conn: Connection, atomic: bool
) -> None:
    await ensure_bucket(conn.js)
    assert await enable_atomic_puts(conn.nc)  # the nats-server we ship knows atomic batches
    jobs = 2 * ATOMIC_BATCH + 7  # several batches and a short last one
    await put_records(conn.pipeline, records("wfa", jobs, "ready"), atomic=atomic)
    await put_records(conn.pipeline, records("wfa", jobs, "completed"), atomic=atomic)
    stored = await job_records(conn.js, "wfa")
    assert [(r.job, r.state) for r in stored] == [(n, "completed") for n in range(jobs)]
    (summary,) = await workflow_records(conn.js, "wfa")
    assert summary.counts == {"completed": jobs}


async def test_atomic_puts_are_switched_on_once(conn: Connection) -> None:
    await ensure_bucket(conn.js)
    assert await enable_atomic_puts(conn.nc)
    assert await enable_atomic_puts(conn.nc)  # already on: no update
    info = await conn.js.stream_info("KV_JOBS")
    assert info.config.max_msgs_per_subject == 1  # the bucket's own settings are kept
