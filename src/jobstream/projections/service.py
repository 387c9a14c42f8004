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
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from jobstream import codec
from jobstream.errors import JobstreamError
from jobstream.projections.duck import DuckStore
from jobstream.projections.kv import ensure_bucket, put_records
from jobstream.projections.query import serve_queries
from jobstream.streams.connection import Connection
from jobstream.streams.reader import read_batches
from jobstream.streams.store import Stored
from jobstream.streams.subjects import EVENTS_STREAM

log = logging.getLogger(__name__)
CONSUMER = "projector"
BATCH = 5000
DB_NAME = "jobstream.duckdb"
KV_TIMEOUT_S = 60.0


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
            sub = await self._subscribe(self.checkpoint)
            async with anyio.create_task_group() as tg:
                await tg.start(serve_queries, self.conn.nc, self.query, self.rebuild)
                task_status.started()
                await self._consume(sub)
        finally:
            with anyio.CancelScope(shield=True):
                store, self.store = self.store, None
                if store is not None:
                    await anyio.to_thread.run_sync(store.close)

    async def _subscribe(self, checkpoint: int) -> JetStreamContext.PullSubscription:
        js = self.conn.js
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(EVENTS_STREAM, CONSUMER)
        config = api.ConsumerConfig(
            durable_name=CONSUMER,
            ack_policy=api.AckPolicy.ALL,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=checkpoint + 1,
            ack_wait=120.0,
            max_ack_pending=-1,
            max_waiting=4,
        )
        return await js.pull_subscribe(
            "ev.>", durable=CONSUMER, stream=EVENTS_STREAM, config=config
        )

    async def _consume(self, sub: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                msgs = await sub.fetch(BATCH, timeout=1.0)
            except TimeoutError:
                continue
            batch = []
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                try:
                    event = codec.decode(msg.data, msg.headers, f"{EVENTS_STREAM}#{seq}")
                except codec.MalformedEvent as exc:
                    log.error("skipped: %s", exc)
                    continue
                batch.append(Stored(seq, msg.subject, event, msg.data))
            await self.project(batch)
            await msgs[-1].ack()

    async def project(self, batch: list[Stored]) -> None:
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
                        await put_records(self.conn.js, [*pending.jobs, *pending.workflows])
                except BaseException:
                    await anyio.to_thread.run_sync(pending.rollback)
                    raise
                await anyio.to_thread.run_sync(pending.commit)
                self.applied += len(batch)
                self.checkpoint = batch[-1].seq
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
    async for batch in read_batches(conn.js, "ev.>", follow=False):
        events = [
            s
            for s in batch.events
            if (upto_seq is None or s.seq <= upto_seq)
            and (upto_time is None or s.event.at <= upto_time)
        ]
        if events:
            await anyio.to_thread.run_sync(store.apply, events)
            applied += len(events)
        if len(events) < len(batch.events):
            break
    return applied
