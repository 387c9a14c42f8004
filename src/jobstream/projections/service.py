"""The projector process: fold EVENTS into DuckDB and the JOBS bucket, answer SQL.

It reads with a durable pull consumer that it (re)creates at start from the DuckDB
checkpoint + 1: the checkpoint, committed with the rows, is the truth about what has been
applied, so a projector killed at any point resumes exactly where its last commit ended.
Per batch: fold every read model in one transaction, write the batch's KV records, commit,
then ack (AckPolicy.ALL: one ack for the batch).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import anyio
import duckdb
import pyarrow as pa
from anyio.abc import TaskStatus

from jobstream import codec
from jobstream.errors import JobstreamError
from jobstream.projections.duck import DuckStore
from jobstream.projections.kv import ensure_bucket, put_records
from jobstream.projections.query import serve_queries
from jobstream.streams.bulk import read_to_end
from jobstream.streams.connection import Connection
from jobstream.streams.reader import RawBatch, read_raw_batches

log = logging.getLogger(__name__)
CONSUMER = "projector"
BATCH = 5000
DB_NAME = "jobstream.duckdb"
KV_TIMEOUT_S = 60.0
LIVE_INTERVAL_S = 0.5


class ProjectorBusy(JobstreamError):
    """Another process holds the DuckDB file (DuckDB allows one writer)."""


def open_store(path: Path) -> DuckStore:
    try:
        return DuckStore(path)
    except duckdb.IOException as exc:
        raise ProjectorBusy(
            f"{path} is in use by another projector ({' '.join(str(exc).split())[:200]})"
        ) from exc


class Projector:
    """Owns the DuckDB file while it runs."""

    def __init__(self, conn: Connection, db_path: Path) -> None:
        self.conn = conn
        self.db_path = db_path
        self.lock = anyio.Lock()
        self.store: DuckStore | None = None
        self.applied = 0
        self.checkpoint = 0
        self.progressed = anyio.Event()  # set (and replaced) at every commit

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await anyio.Path(self.db_path.parent).mkdir(parents=True, exist_ok=True)
        self.store = await anyio.to_thread.run_sync(open_store, self.db_path)
        try:
            await ensure_bucket(self.conn.js)
            self.checkpoint = self.store.checkpoint()
            async with anyio.create_task_group() as tg:
                await tg.start(serve_queries, self.conn.nc, self.query, self.rebuild)
                task_status.started()
                await self._consume()
        finally:
            with anyio.CancelScope(shield=True):
                store, self.store = self.store, None
                if store is not None:
                    await anyio.to_thread.run_sync(store.close)

    async def _consume(self) -> None:
        """Apply batches as they come; when live, at most one commit per LIVE_INTERVAL_S.

        A commit costs about the same for 10 events as for 1,000: while events trickle
        in, letting them gather for a moment keeps the projector's CPU proportional to
        the events, at a bounded cost in lag.
        """
        # Catch up in bulk (a restart, a new file), then follow the live stream.
        backlog = read_to_end(self.conn.js, self.conn.url, from_seq=self.checkpoint + 1)
        async with backlog as batches:
            async for raw in batches:
                if raw.seqs:
                    await self.project(raw)
        async for raw in read_raw_batches(self.conn.js, "ev.>", from_seq=self.checkpoint + 1):
            began = anyio.current_time()
            if raw.seqs:
                await self.project(raw)
            if raw.caught_up:
                await anyio.sleep(max(0.0, LIVE_INTERVAL_S - (anyio.current_time() - began)))

    async def project(self, batch: RawBatch) -> None:
        """Apply one batch: rows + checkpoint in DuckDB, KV records, then commit.

        Shielded: a cancellation waits for the batch to finish, so KV and DuckDB never
        disagree about a batch that was half written when the projector was stopped.
        """
        with anyio.CancelScope(shield=True):
            async with self.lock:
                assert self.store is not None
                pending = await anyio.to_thread.run_sync(self.store.begin, batch)
                if pending is None:
                    return
                try:
                    with anyio.fail_after(KV_TIMEOUT_S):
                        await put_records(self.conn.pipeline, [*pending.jobs, *pending.workflows])
                except BaseException:
                    await anyio.to_thread.run_sync(pending.rollback)
                    raise
                await anyio.to_thread.run_sync(pending.commit)
                self.applied += len(batch.seqs)
                self.checkpoint = batch.seqs[-1]
                self.progressed.set()
                self.progressed = anyio.Event()

    async def caught_up(self, seq: int) -> None:
        """Wait until everything up to stream sequence ``seq`` is committed."""
        while self.checkpoint < seq:
            await self.progressed.wait()

    async def query(self, sql: str) -> pa.Table:
        """Answer from committed state at least as new as the KV records already written."""
        async with self.lock:
            assert self.store is not None
            return await anyio.to_thread.run_sync(self.store.query, sql)

    async def rebuild(self) -> dict[str, object]:
        """Replay the whole log into a fresh file, then swap it in while consuming pauses."""
        began = time.monotonic()
        fresh_path = self.db_path.with_suffix(".rebuild")
        async with self.lock:
            events = await replay_into(self.conn, fresh_path)
            assert self.store is not None
            await anyio.to_thread.run_sync(self.store.close)
            os.replace(fresh_path, self.db_path)
            self.store = await anyio.to_thread.run_sync(open_store, self.db_path)
        seconds = time.monotonic() - began
        return {"events": events, "seconds": round(seconds, 3), "path": str(self.db_path)}


async def replay_into(
    conn: Connection, path: Path, *, upto_seq: int | None = None, upto_time: float | None = None
) -> int:
    """Build a read-model file from sequence 1 (up to a point); returns events applied."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    store = await anyio.to_thread.run_sync(DuckStore, path)
    try:
        return await replay_store(conn, store, upto_seq=upto_seq, upto_time=upto_time)
    finally:
        await anyio.to_thread.run_sync(store.close)


async def replay_store(
    conn: Connection,
    store: DuckStore,
    *,
    upto_seq: int | None = None,
    upto_time: float | None = None,
) -> int:
    """Fold the log into ``store`` (no KV writes): rebuild and point-in-time queries."""
    applied = 0
    async with read_to_end(conn.js, conn.url) as batches:
        async for raw in batches:
            kept = raw
            if upto_time is not None:
                kept = cut_at_time(kept, upto_time)
            if upto_seq is not None:
                kept = cut(kept, sum(seq <= upto_seq for seq in kept.seqs))
            if kept.seqs:
                await anyio.to_thread.run_sync(store.apply, kept)
                applied += len(kept.seqs)
            if len(kept.seqs) < len(raw.seqs):
                break  # the point in time is inside this batch
    return applied


def cut(raw: RawBatch, count: int) -> RawBatch:
    """The first ``count`` events of a batch."""
    return RawBatch(
        raw.seqs[:count],
        raw.subjects[:count],
        raw.headers[:count],
        raw.payloads[:count],
        caught_up=False,
    )


def cut_at_time(raw: RawBatch, upto: float) -> RawBatch:
    """Events decided at or before ``upto`` (the log is in decision order per subject)."""
    for i, data in enumerate(raw.payloads):
        if codec.event_time(data) > upto:
            return cut(raw, i)
    return raw
