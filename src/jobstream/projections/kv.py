"""KV bucket JOBS: the latest state of every job and a summary per workflow.

Keys: ``<wf>.<n>`` for a job, ``<wf>.wf`` for its workflow's counts. The projector writes
them, coalesced per batch, before it commits the batch (a batch applied again rewrites the
same values). ``jobstream status``, ``watch`` and progress bars read this bucket, never the
log or DuckDB, so they cost one key per workflow however many jobs it has.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import msgspec
from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from jobstream.streams.pipeline import Pipeline

BUCKET = "JOBS"


class JobRecord(msgspec.Struct, frozen=True, kw_only=True):
    wf: str
    job: int
    state: str
    attempt: int
    worker: str | None
    updated_at: float
    seq: int


class WorkflowRecord(msgspec.Struct, frozen=True, kw_only=True):
    wf: str
    name: str
    user: str
    job_count: int
    submitted_at: float
    finished: bool
    counts: dict[str, int]
    seq: int

    def done(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("completed", "failed", "timed_out", "canceled"))


_encoder = msgspec.json.Encoder()
_job_decoder = msgspec.json.Decoder(JobRecord)
_wf_decoder = msgspec.json.Decoder(WorkflowRecord)


def job_key(wf: str, job: int) -> str:
    return f"{wf}.{job}"


def workflow_key(wf: str) -> str:
    return f"{wf}.wf"


async def ensure_bucket(js: JetStreamContext) -> KeyValue:
    try:
        return await js.key_value(BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_key_value(
            config=api.KeyValueConfig(bucket=BUCKET, history=1, storage=api.StorageType.FILE)
        )


async def put_records(pipeline: Pipeline, records: Iterable[JobRecord | WorkflowRecord]) -> None:
    """Pipelined puts (a KV put is a publish on ``$KV.<bucket>.<key>``)."""
    futures = []
    for record in records:
        key = (
            job_key(record.wf, record.job)
            if isinstance(record, JobRecord)
            else workflow_key(record.wf)
        )
        futures.append(await pipeline.publish(f"$KV.{BUCKET}.{key}", _encoder.encode(record)))
    for future in futures:
        await pipeline.ack(future)


async def workflow_records(js: JetStreamContext, wf: str | None = None) -> list[WorkflowRecord]:
    """Summaries of one workflow or all, in submission order."""
    kv = await ensure_bucket(js)
    found = [_wf_decoder.decode(value) async for _, value in _current(kv, workflow_key(wf or "*"))]
    return sorted(found, key=lambda r: (r.submitted_at, r.wf))


async def job_records(js: JetStreamContext, wf: str) -> list[JobRecord]:
    kv = await ensure_bucket(js)
    found = [
        _job_decoder.decode(value)
        async for key, value in _current(kv, f"{wf}.*")
        if not key.endswith(".wf")
    ]
    return sorted(found, key=lambda r: r.job)


async def _current(kv: KeyValue, keys: str) -> AsyncIterator[tuple[str, bytes]]:
    """Every current ``(key, value)`` under a key pattern, then stop."""
    watcher = await kv.watch(keys, ignore_deletes=True)
    try:
        async for entry in watcher:
            if entry is None:
                return
            if entry.value:
                yield entry.key, entry.value
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]


async def watch_workflow(js: JetStreamContext, wf: str) -> AsyncIterator[WorkflowRecord]:
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


async def watch_jobs(js: JetStreamContext, wf: str) -> AsyncIterator[JobRecord | WorkflowRecord]:
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
