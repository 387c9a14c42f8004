"""KV job-state writes against a real server: counted puts, and the atomic batches and
one-by-one puts they fall back on, agree; a put the server did not store is noticed."""

from __future__ import annotations

import pytest
from nats.js.errors import APIError

from jobstream.projections.kv import (
    ATOMIC_BATCH,
    COUNTED_STRETCH,
    ensure_bucket,
    job_records,
    put_records,
    workflow_records,
)
from jobstream.projections.records import JobRecord, WorkflowStatus
from jobstream.streams.connection import Connection
from jobstream.streams.pipeline import Pipeline
from jobstream.streams.setup import allow_atomic
from jobstream.streams.subjects import JOBS_BUCKET_STREAM


def records(wf: str, jobs: int, state: str) -> list[JobRecord | WorkflowStatus]:
    found: list[JobRecord | WorkflowStatus] = [
        JobRecord(wf=wf, job=n, state=state, attempt=1, worker="w", updated_at=1.0, seq=n)
        for n in range(jobs)
    ]
    summary = WorkflowStatus(
        wf=wf, name=wf, user="u", job_count=jobs, submitted_at=1.0, finished=False,
        counts={state: jobs}, seq=jobs,
    )  # fmt: skip
    return [*found, summary]


@pytest.mark.parametrize("atomic", [True, False])
async def test_every_record_is_stored_and_the_last_write_wins(
    conn: Connection, atomic: bool
) -> None:
    await ensure_bucket(conn.js)
    assert await allow_atomic(conn.nc, JOBS_BUCKET_STREAM)  # the nats-server we ship knows them
    jobs = 2 * ATOMIC_BATCH + 7  # several batches and a short last one
    await put_records(conn.pipeline, records("wfa", jobs, "ready"), atomic=atomic)
    await put_records(conn.pipeline, records("wfa", jobs, "completed"), atomic=atomic)
    stored = await job_records(conn.js, "wfa")
    assert [(r.job, r.state) for r in stored] == [(n, "completed") for n in range(jobs)]
    (summary,) = await workflow_records(conn.js, "wfa")
    assert summary.counts == {"completed": jobs}


async def test_atomic_puts_are_switched_on_once(conn: Connection) -> None:
    await ensure_bucket(conn.js)
    assert await allow_atomic(conn.nc, JOBS_BUCKET_STREAM)
    assert await allow_atomic(conn.nc, JOBS_BUCKET_STREAM)  # already on: no update
    info = await conn.js.stream_info("KV_JOBS")
    assert info.config.max_msgs_per_subject == 1  # the bucket's own settings are kept


class LosingPipeline(Pipeline):
    """Drops the n-th fire-and-forget message, as a reconnect may lose one in flight."""

    def __init__(self, conn: Connection, lose: int) -> None:
        super().__init__(conn.nc)
        self.posted, self.lose = 0, lose

    def post(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.posted += 1
        if self.posted != self.lose:
            super().post(subject, payload, headers)


@pytest.mark.parametrize("atomic", [True, False])
async def test_a_put_lost_in_a_stretch_is_written_again(conn: Connection, atomic: bool) -> None:
    await ensure_bucket(conn.js)
    await allow_atomic(conn.nc, JOBS_BUCKET_STREAM)
    pipeline = LosingPipeline(conn, lose=COUNTED_STRETCH + 500)  # in the second stretch
    try:
        jobs = COUNTED_STRETCH + 1000
        await put_records(pipeline, records("wfl", jobs, "ready"), atomic=atomic)
    finally:
        await pipeline.close()
    stored = await job_records(conn.js, "wfl")
    assert [(r.job, r.state) for r in stored] == [(n, "ready") for n in range(jobs)]
    info = await conn.js.stream_info("KV_JOBS")
    # The first stretch once; the second twice (counted, then acknowledged), less the loss.
    assert info.state.last_seq == COUNTED_STRETCH + 2 * (jobs + 1 - COUNTED_STRETCH) - 1


async def test_a_put_the_stream_refuses_is_an_error_not_a_loss(conn: Connection) -> None:
    await ensure_bucket(conn.js)
    config = await conn.js.stream_info("KV_JOBS")
    config.config.max_msg_size = 400
    await conn.js.update_stream(config.config)
    too_big = JobRecord(wf="wfr", job=1, state="ready", attempt=1, worker="w" * 500,
                        updated_at=1.0, seq=1)  # fmt: skip
    batch = [*records("wfr", 3, "ready"), too_big, *records("wfr", 3, "completed")]
    with pytest.raises(APIError):
        await put_records(conn.pipeline, batch, atomic=False)
