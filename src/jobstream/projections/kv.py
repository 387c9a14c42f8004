"""KV bucket JOBS: the latest state of every job and a summary per workflow.

Keys: ``<wf>.<n>`` for a job, ``<wf>.wf`` for its workflow's counts. The projector writes
them, coalesced per batch, after it commits the batch (a batch applied again rewrites the
same values). ``jobstream status``, ``watch`` and progress bars read this bucket, never the
log or DuckDB, so they cost one key per workflow however many jobs it has.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Sequence

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from jobstream.projections.records import JobRecord, WorkflowStatus
from jobstream.streams.buckets import current_values
from jobstream.streams.pipeline import Pipeline
from jobstream.streams.setup import ensure_kv
from jobstream.streams.subjects import (
    JOBS_BUCKET,
    JOBS_BUCKET_STREAM,
    kv_subject,
)
from jobstream.streams.wire import batch_headers

log = logging.getLogger(__name__)
ATOMIC_BATCH = 1000  # the server's limit per batch
ATOMIC_IN_FLIGHT = 32  # the server allows 50 open batches per stream
COUNTED_STRETCH = 10_000  # puts checked by one pair of acknowledgements (bounds the outbox)


_encoder = msgspec.json.Encoder()
_job_decoder = msgspec.json.Decoder(JobRecord)
_wf_decoder = msgspec.json.Decoder(WorkflowStatus)


async def forget_records(js: JetStreamContext) -> None:
    """Remove every record, for a projector that writes them all again."""
    await js.purge_stream(JOBS_BUCKET_STREAM)


async def forget_jobs(js: JetStreamContext, wf: str) -> None:
    """Remove the records of a workflow (an archived one: its jobs' go for good, and its
    own is written again after)."""
    await js.purge_stream(JOBS_BUCKET_STREAM, subject=kv_subject(JOBS_BUCKET, f"{wf}.*"))


def job_key(wf: str, job: int) -> str:
    return f"{wf}.{job}"


def workflow_key(wf: str) -> str:
    return f"{wf}.wf"


async def ensure_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    """The JOBS bucket (a server makes it at start, with the cluster's ``replicas``)."""
    return await ensure_kv(js, JOBS_BUCKET, replicas)


async def put_records(
    pipeline: Pipeline, records: Sequence[JobRecord | WorkflowStatus], *, atomic: bool
) -> None:
    """Write records (a KV put is a publish on ``$KV.<bucket>.<key>``) and wait until
    they are stored.

    Counted first (:func:`_put_counted`): nearly all puts are sent without a reply
    subject, which costs nats-server and the projector a fraction of an acknowledged or
    atomic put. A stretch that does not add up is written again with every put accounted
    for: ``atomic``, in atomic batches of up to 1,000 (only the last acknowledged; the
    server stores a batch whole or not at all, and says which), or else one by one.
    """
    for start in range(0, len(records), COUNTED_STRETCH):
        stretch = records[start : start + COUNTED_STRETCH]
        if not await _put_counted(pipeline, stretch):
            log.warning(
                "KV: the server did not store all of %d puts; writing them again, acknowledged",
                len(stretch),
            )
            await _put_acknowledged(pipeline, stretch, atomic=atomic)


async def _put_counted(pipeline: Pipeline, records: Sequence[JobRecord | WorkflowStatus]) -> bool:
    """Put the first and the last record with an acknowledgement and those between
    without; True if the server stored them all.

    The connection delivers them in order and the stream numbers what it stores one by
    one, so all were stored exactly when the two acknowledged sequences are as far apart
    as the records: one missing (dropped, refused, lost to a reconnect) makes the gap
    smaller. The projector is the bucket's only writer; a foreign put in between makes
    it larger, and the stretch is only written again.
    """
    if not records:
        return True
    first = await pipeline.publish(*_put(records[0]))
    for record in records[1:-1]:
        pipeline.post(*_put(record))
    last = await pipeline.publish(*_put(records[-1])) if len(records) > 1 else first
    first_seq = await pipeline.ack(first)
    return await pipeline.ack(last) - first_seq == len(records) - 1


async def _put_acknowledged(
    pipeline: Pipeline, records: Sequence[JobRecord | WorkflowStatus], *, atomic: bool
) -> None:
    if not atomic:
        singles = [await pipeline.publish(*_put(record)) for record in records]
        for future in singles:
            await pipeline.ack(future)
        return
    commits: deque[asyncio.Future[int]] = deque()
    for start in range(0, len(records), ATOMIC_BATCH):
        batch = records[start : start + ATOMIC_BATCH]
        batch_id = secrets.token_hex(8)
        for n, record in enumerate(batch, 1):
            if n < len(batch):
                pipeline.post(*_put(record), batch_headers(batch_id, n))
            else:
                commits.append(
                    await pipeline.publish(*_put(record), batch_headers(batch_id, n, True))
                )
        if len(commits) >= ATOMIC_IN_FLIGHT:
            await pipeline.ack(commits.popleft())
    for future in commits:
        await pipeline.ack(future)


def _put(record: JobRecord | WorkflowStatus) -> tuple[str, bytes]:
    return kv_subject(JOBS_BUCKET, record_key(record)), _encoder.encode(record)


def record_key(record: JobRecord | WorkflowStatus) -> str:
    if isinstance(record, JobRecord):
        return job_key(record.wf, record.job)
    return workflow_key(record.wf)


async def workflow_records(js: JetStreamContext, wf: str | None = None) -> list[WorkflowStatus]:
    """Summaries of one workflow or all, in submission order."""
    await ensure_bucket(js)
    found = [
        _wf_decoder.decode(value)
        async for _, value in current_values(js, JOBS_BUCKET, workflow_key(wf or "*"))
    ]
    return sorted(found, key=lambda r: (r.submitted_at, r.wf))


async def job_records(js: JetStreamContext, wf: str) -> list[JobRecord]:
    await ensure_bucket(js)
    found = [
        _job_decoder.decode(value)
        async for key, value in current_values(js, JOBS_BUCKET, f"{wf}.*")
        if not key.endswith(".wf")
    ]
    return sorted(found, key=lambda r: r.job)


async def watch_workflow(js: JetStreamContext, wf: str) -> AsyncIterator[WorkflowStatus]:
    """The workflow's summary now and at every change, until it is finished."""
    kv = await ensure_bucket(js)
    watcher = await kv.watch(workflow_key(wf), ignore_deletes=True)
    try:
        async for entry in watcher:
            if entry is None or not entry.value:
                continue
            record = _wf_decoder.decode(entry.value)
            yield record
            if record.finished:
                return
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]


async def watch_jobs(js: JetStreamContext, wf: str) -> AsyncIterator[JobRecord | WorkflowStatus]:
    """Every job state change of a workflow (and its summary), until it is finished."""
    kv = await ensure_bucket(js)
    watcher = await kv.watch(f"{wf}.*", ignore_deletes=True)
    try:
        async for entry in watcher:
            if entry is None or not entry.value:
                continue
            if entry.key.endswith(".wf"):
                record = _wf_decoder.decode(entry.value)
                yield record
                if record.finished:
                    return
            else:
                yield _job_decoder.decode(entry.value)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
