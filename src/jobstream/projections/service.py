"""The projector process: fold EVENTS into DuckDB and the JOBS bucket, answer SQL.

It reads the log from the DuckDB checkpoint + 1: the checkpoint, committed with the
rows, is the truth about what has been applied, so a projector killed at any point
resumes exactly where its last commit ended. A backlog is read in bulk
(:mod:`jobstream.streams.bulk`), then the live stream the same way, followed. Per
batch: fold every read model and move the checkpoint in one transaction, then write the
batch's KV records (see :class:`Projector` for how KV keeps up after a crash).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import duckdb
import pyarrow as pa
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from jobstream import codec
from jobstream.archive.archiver import NotArchivable, announce, purge
from jobstream.archive.replay import replay
from jobstream.archive.store import archive_of
from jobstream.config import Settings
from jobstream.errors import JobstreamError
from jobstream.projections.divergence import Recorded, disagreement
from jobstream.projections.duck import DuckStore, Records, Staged, payload_text
from jobstream.projections.guard import DEFAULT_LIMITS, QueryLimits, limits_of
from jobstream.projections.kv import ensure_bucket, forget_jobs, forget_records, put_records
from jobstream.projections.query import serve_queries
from jobstream.streams.bulk import follow_bulk
from jobstream.streams.connection import Connection
from jobstream.streams.setup import allow_atomic
from jobstream.streams.subjects import ARCHIVE_SUBJECT, JOBS_BUCKET_STREAM, REBUILD_SUBJECT
from jobstream.streams.wire import RawBatch

log = logging.getLogger(__name__)
T = TypeVar("T")
CONSUMER = "projector"
# Catch-up and replay batches of one DuckDB row group (its default size): a transaction
# that appends a whole row group to a table writes it to the file compressed, without
# the write-ahead log; a smaller batch goes through the log uncompressed and is written
# twice. Per-batch costs (commit, KV flush) are paid less often, too.
BULK_BATCH = 122_880
KV_TIMEOUT_S = 60.0
LIVE_INTERVAL_S = 0.5
# While live, applying takes at most this share of the projector's time: a commit costs
# about the same whatever the batch size (DuckDB compiles the folds each time), and
# more on a machine busy with jobs, which is when the CPU is needed elsewhere.
LIVE_SHARE = 0.25
ARCHIVER = "projector"  # the actor of WorkflowArchived
# Passes over the finished workflows: a tenth of the retention, within these bounds.
ARCHIVE_PASS_S = (1.0, 60.0)


class ProjectorBusy(JobstreamError):
    """Another process holds the DuckDB file (DuckDB allows one writer)."""


def open_store(path: Path, limits: QueryLimits = DEFAULT_LIMITS) -> DuckStore:
    try:
        return DuckStore(path, limits=limits)
    except duckdb.IOException as exc:
        raise ProjectorBusy(
            f"{path} is in use by another projector ({' '.join(str(exc).split())[:200]})"
        ) from exc


class Projector:
    """Owns the DuckDB file while it runs.

    DuckDB and the KV bucket are written in a pipeline: a batch is committed to DuckDB,
    then its KV records are written while the next batch is folded (on a 2-core machine
    the KV puts, mostly nats-server's work, and the folds, DuckDB's, overlap). A second
    tracking record, the KV checkpoint, says up to where KV is known to be written; it
    moves with the next batch's commit. After a crash, or a rebuild, the records of
    everything after it are rewritten from the tables before anything else happens, so
    KV never stays behind DuckDB.
    """

    def __init__(
        self,
        conn: Connection,
        db_path: Path,
        limits: QueryLimits = DEFAULT_LIMITS,
        retention_s: float | None = None,
    ) -> None:
        self.conn = conn
        self.db_path = db_path
        self.limits = limits  # of the SQL it answers
        self.retention_s = retention_s  # finished this long ago: archived (None: never)
        self.lock = anyio.Lock()  # the DuckDB file: one writer, and the rebuild swap
        # Archiving and rebuilding exclude each other: a rebuild reads the archives
        # announced when it starts, and the log, which an archive's purge changes.
        self.archiving = anyio.Lock()
        self.live = anyio.Event()  # caught up with the log once
        self.store: DuckStore | None = None
        self.checkpoint = 0  # everything up to here is in DuckDB and in KV
        self.progressed = anyio.Event()  # set (and replaced) when the checkpoint moves
        self.atomic_puts = False
        self.kv_pending: MemoryObjectSendStream[tuple[Records, int]] | None = None
        self._committed = 0  # DuckDB holds everything up to here

    @classmethod
    def of(cls, conn: Connection, settings: Settings) -> Projector:
        """The projector of the settings' state directory, answering SQL within their
        limits."""
        return cls(conn, settings.db_path(), limits_of(settings), settings.archive_after_s())

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await anyio.Path(self.db_path.parent).mkdir(parents=True, exist_ok=True)
        self.store = await anyio.to_thread.run_sync(open_store, self.db_path, self.limits)
        try:
            await ensure_bucket(self.conn.js, self.conn.replicas)
            self.atomic_puts = await allow_atomic(self.conn.nc, JOBS_BUCKET_STREAM)
            await self._agree_with_log()
            await self._repair_kv()
            send, receive = anyio.create_memory_object_stream[tuple[Records, int]](0)
            async with anyio.create_task_group() as tg, send:
                self.kv_pending = send
                tg.start_soon(self._write_kv, receive)
                commands = {REBUILD_SUBJECT: self._rebuild, ARCHIVE_SUBJECT: self._archive}
                await tg.start(serve_queries, self.conn.nc, self.query, commands)
                if self.retention_s is not None:
                    tg.start_soon(self._archive_finished, self.retention_s)
                task_status.started()
                await self._consume()
        finally:
            with anyio.CancelScope(shield=True):
                store, self.store = self.store, None
                if store is not None:
                    await anyio.to_thread.run_sync(store.close)

    async def _consume(self) -> None:
        """Apply batches as they come; when live, at most one commit per LIVE_INTERVAL_S,
        or per four times the last commit's duration (LIVE_SHARE), whichever is longer.

        A commit costs about the same for 10 events as for 1,000: while events trickle
        in, letting them gather for a moment keeps the projector's CPU proportional to
        the events, at a bounded cost in lag.
        """
        # Catch up in bulk (a restart, a new file), with what was archived meanwhile,
        # then follow the live stream.
        async with replay(self.conn, BULK_BATCH, from_seq=self._committed + 1) as batches:
            async for raw in batches:
                if raw.seqs:
                    await self.project(raw)
        self.live.set()
        live = follow_bulk(self.conn.js, self.conn.endpoint, from_seq=self._committed + 1)
        async with contextlib.aclosing(live):
            async for raw in live:
                began = anyio.current_time()
                if raw.seqs:
                    await self.project(raw)
                if raw.caught_up:
                    took = anyio.current_time() - began
                    await anyio.sleep(max(LIVE_INTERVAL_S, took / LIVE_SHARE) - took)

    async def project(self, batch: RawBatch) -> None:
        """Commit one batch to DuckDB, then queue its KV records (waits while the
        previous batch's are still being written)."""
        assert self.kv_pending is not None
        async with self.lock:
            assert self.store is not None
            written = await anyio.to_thread.run_sync(
                functools.partial(self.store.apply, batch, kv_seq=self.checkpoint, records=True)
            )
        if written is not None:
            self._committed = batch.seqs[-1]
            await self.kv_pending.send((written, batch.seqs[-1]))

    async def _write_kv(self, batches: MemoryObjectReceiveStream[tuple[Records, int]]) -> None:
        """Write each committed batch's KV records, in commit order."""
        async with batches:
            async for records, seq in batches:
                await self._put(records)
                self._advance(seq)

    async def _put(self, records: Records) -> None:
        """Write KV records, after removing those of the workflows archived."""
        with anyio.fail_after(KV_TIMEOUT_S):
            for wf in records.archived:
                await forget_jobs(self.conn.js, wf)
            await put_records(self.conn.pipeline, records.all(), atomic=self.atomic_puts)

    async def _agree_with_log(self) -> None:
        """Rebuild read models that hold events the log does not (see
        :mod:`jobstream.projections.divergence`); KV records are all written again."""
        store = self.store
        assert store is not None
        checkpoint, recorded = await anyio.to_thread.run_sync(
            lambda: (store.checkpoint(), store.last_event())
        )
        log_end = await self.conn.store.end()
        in_log = None
        if recorded is not None and recorded.seq <= log_end:
            found = await self.conn.store.at(recorded.seq)
            if found is not None:
                in_log = Recorded(found.seq, found.subject, payload_text(found.data))
            elif await archived_since(self.conn, recorded):
                in_log = recorded  # long finished, archived and purged by another projector
        why = disagreement(checkpoint, log_end, recorded, in_log)
        if why is None:
            return
        log.warning("%s: rebuilding them from the log, and the KV records", why)
        self.store = None
        await anyio.to_thread.run_sync(store.close)
        await forget_records(self.conn.js)
        await rebuild_file(self.conn, self.db_path, kv_seq=0)
        self.store = await anyio.to_thread.run_sync(open_store, self.db_path, self.limits)

    async def _repair_kv(self) -> None:
        """Rewrite the KV records of everything after the KV checkpoint (the records of
        the last batches before a crash, or a rebuild's); consuming must be paused."""
        assert self.store is not None
        store = self.store
        seq, written = await anyio.to_thread.run_sync(
            lambda: (store.checkpoint(), store.kv_checkpoint())
        )
        if written < seq:
            records = await anyio.to_thread.run_sync(store.records_after, written)
            await self._put(records)
            await anyio.to_thread.run_sync(store.set_kv_checkpoint, seq)
        self._committed = seq
        self._advance(seq)

    def _advance(self, seq: int) -> None:
        self.checkpoint = seq
        self.progressed.set()
        self.progressed = anyio.Event()

    async def caught_up(self, seq: int) -> None:
        """Wait until everything up to stream sequence ``seq`` is in DuckDB and in KV."""
        while self.checkpoint < seq:
            await self.progressed.wait()

    async def query(self, sql: str, owner: str | None = None) -> pa.Table:
        """Answer from committed state at least as new as the KV records already written
        (``owner``: from that submitter's rows only)."""
        async with self.lock:
            assert self.store is not None
            return await anyio.to_thread.run_sync(self.store.query, sql, owner)

    async def _rebuild(self, request: dict[str, object]) -> dict[str, object]:
        return await self.rebuild()

    async def rebuild(self) -> dict[str, object]:
        """Replay the whole log into a fresh file, then swap it in while consuming pauses."""
        async with self.archiving, self.lock:
            store = self.store
            assert store is not None
            await self.caught_up(self._committed)  # KV written for the old file

            async def close() -> None:
                await anyio.to_thread.run_sync(store.close)

            result = await rebuild_file(self.conn, self.db_path, self.checkpoint, before_swap=close)
            self.store = await anyio.to_thread.run_sync(open_store, self.db_path, self.limits)
            await self._repair_kv()  # the fresh file may reach further than the old one
        return result

    async def _archive(self, request: dict[str, object]) -> dict[str, object]:
        wf = request.get("wf")
        if not isinstance(wf, str):
            raise ValueError('archive: give {"wf": WORKFLOW}')
        return await self.archive(wf)

    async def archive(self, wf: str) -> dict[str, object]:
        """Archive a finished workflow now (see :mod:`jobstream.archive`): announced, then
        purged from EVENTS once this projector has folded the announcement."""
        async with self.archiving:
            began = time.monotonic()
            seq, archived = await announce(self.conn, wf, self.db_path.parent, ARCHIVER)
            await self.caught_up(seq)
            await purge(self.conn, archived.wf, archived.last_seq)
        return {
            "wf": wf,
            "object": archived.object,
            "events": archived.events,
            "bytes": archived.size,
            "seq": seq,
            "seconds": round(time.monotonic() - began, 3),
        }

    async def _archive_finished(self, retention_s: float) -> None:
        """Archive every workflow finished longer than ``retention_s`` ago, in passes.

        The first pass purges again what earlier archives hold (a projector stopped
        between announcing an archive and purging left it in the log).
        """
        await self.live.wait()
        try:
            for wf, last_seq in await self._read(DuckStore.archived):
                await purge(self.conn, wf, last_seq)
        except Exception as exc:  # left in the log until this projector starts again
            log.warning("purging archived workflows again failed: %s", exc)
        low, high = ARCHIVE_PASS_S
        every = min(high, max(low, retention_s / 10))
        while True:
            due = functools.partial(DuckStore.finished_before, at=time.time() - retention_s)
            for wf in await self._read(due):
                try:
                    done = await self.archive(wf)
                except NotArchivable as exc:  # restarted since: the log says so first
                    log.info("not archived: %s", exc)
                except Exception as exc:  # the next pass tries again
                    log.warning("archiving workflow %s failed: %s", wf, exc)
                else:
                    log.info(
                        "archived workflow %s: %s events, %s bytes",
                        wf,
                        done["events"],
                        done["bytes"],
                    )
            await anyio.sleep(every)

    async def _read(self, read: Callable[[DuckStore], T]) -> T:
        async with self.lock:
            store = self.store
            assert store is not None
            return await anyio.to_thread.run_sync(read, store)


async def archived_since(conn: Connection, recorded: Recorded) -> bool:
    """Whether an event gone from the log is in its workflow's archive."""
    parts = recorded.subject.split(".")
    archived = await archive_of(conn, parts[1]) if len(parts) > 2 else None
    return archived is not None and archived.first_seq <= recorded.seq <= archived.last_seq


async def rebuild_file(
    conn: Connection,
    path: Path,
    kv_seq: int,
    *,
    before_swap: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, object]:
    """Replay the whole log into a fresh file next to ``path`` and swap it in (after
    ``before_swap``, which lets go of the old one); events, seconds and the path.

    ``kv_seq``: how far the KV records of the old file are known to be written; the
    projector that opens the file next writes those of everything after it.
    """
    began = time.monotonic()
    fresh = path.with_suffix(".rebuild")
    events = await replay_into(conn, fresh, kv_seq=kv_seq)
    if before_swap is not None:
        await before_swap()
    os.replace(fresh, path)
    return {"events": events, "seconds": round(time.monotonic() - began, 3), "path": str(path)}


async def replay_into(
    conn: Connection,
    path: Path,
    *,
    upto_seq: int | None = None,
    upto_time: float | None = None,
    kv_seq: int | None = None,
) -> int:
    """Build a read-model file from sequence 1 (up to a point); returns events applied.

    ``kv_seq``: how far the KV records are known to be written (the file it replaces);
    the projector that opens the file next writes the records of everything after it.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    store = await anyio.to_thread.run_sync(DuckStore, path)
    try:
        applied = await replay_store(conn, store, upto_seq=upto_seq, upto_time=upto_time)
        if kv_seq is not None:
            await anyio.to_thread.run_sync(store.set_kv_checkpoint, kv_seq)
        return applied
    finally:
        await anyio.to_thread.run_sync(store.close)


async def replay_store(
    conn: Connection,
    store: DuckStore,
    *,
    upto_seq: int | None = None,
    upto_time: float | None = None,
) -> int:
    """Fold the log into ``store`` (no KV writes): rebuild and point-in-time queries.

    Each batch is parsed while the one before it is folded, in two threads: staging is a
    fifth of a replay's DuckDB time, and folding runs on one core. A batch still staged
    when the replay fails goes with the store, which its caller closes.
    """
    applied = 0
    folding: Staged | None = None
    async with replay(conn, BULK_BATCH) as batches:
        async for raw in batches:
            kept = raw
            if upto_time is not None:
                kept = cut_at_time(kept, upto_time)
            if upto_seq is not None:
                kept = cut(kept, sum(seq <= upto_seq for seq in kept.seqs))
            if kept.seqs:
                folding = await _stage_while_folding(store, kept, folding)
                applied += len(kept.seqs)
            if len(kept.seqs) < len(raw.seqs):
                break  # the point in time is inside this batch
    if folding is not None:
        await anyio.to_thread.run_sync(store.fold, folding)
    return applied


async def _stage_while_folding(
    store: DuckStore, raw: RawBatch, folding: Staged | None
) -> Staged | None:
    """Stage ``raw`` while ``folding`` is folded; returns what is to be folded next."""

    async def fold(previous: Staged) -> None:
        await anyio.to_thread.run_sync(store.fold, previous)

    async with anyio.create_task_group() as tg:
        if folding is not None:
            tg.start_soon(fold, folding)
        staged = await anyio.to_thread.run_sync(store.stage, raw)
    return staged


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
