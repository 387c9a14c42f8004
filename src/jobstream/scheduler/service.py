"""The scheduler process: replay the log, then turn every new fact into decisions.

At start it restores its last snapshot (:mod:`jobstream.scheduler.snapshot`: the open
workflows at a sequence, in the object store) and reads EVENTS from the sequence after
it (from 1 without one), then carries out what the replay left undone: undecided jobs,
jobs released but not made ready, ready jobs whose WORK message is gone. It keeps a
snapshot every SNAPSHOT_EVERY_S and when it stops. Each decision
is appended with CAS on the job's last sequence, so a second scheduler or a restarted one
can never make a job ready twice, and each WORK message carries a deterministic
Nats-Msg-Id so a repeated dispatch is deduplicated.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from jobstream.decide import AnyCommand, Block, Cancel, MakeReady
from jobstream.errors import IllegalTransition
from jobstream.events import Event, WorkflowArchived, WorkflowCompleted
from jobstream.scheduler.dispatch import Dispatcher
from jobstream.scheduler.partition import WHOLE_LOG, Partition
from jobstream.scheduler.snapshot import load, restore, save, snapshots, take
from jobstream.scheduler.state import (
    BlockIntent,
    CancelIntent,
    CompleteIntent,
    DispatchIntent,
    Intent,
    MakeReadyIntent,
    SchedulerState,
    WorkflowTrack,
)
from jobstream.streams.bulk import follow_bulk, read_ahead, read_to_end
from jobstream.streams.connection import Connection, patiently
from jobstream.streams.reader import decode_batch
from jobstream.streams.repository import JobVersion
from jobstream.streams.store import Conflict, IllFormed, Stored
from jobstream.streams.subjects import EVENTS_STREAM, job_of, workflow_filter
from jobstream.streams.wire import RawBatch

log = logging.getLogger(__name__)
ACTOR = "scheduler"
CHUNK = 5000
FIRST_CHUNK = 100
CHUNK_S = 0.05  # what a chunk of intents should take at most
SWEEP_S = 5.0  # how often the running scheduler looks for jobs a takeover left half done
STRANDED_S = 10.0  # a JobLost without its JobClaimed for this long is a half-done takeover
SNAPSHOT_EVERY_S = 60.0  # how often the running scheduler keeps its state
SNAPSHOT_ON_EXIT_S = 10.0
START_TIMEOUT_S = 2.0
ARCHIVED = f".{WorkflowArchived.__name__}"  # an announcement alone reads nothing back


class Scheduler:
    """Folds EVENTS and appends JobBlocked/JobReady/JobCanceled/WorkflowCompleted."""

    def __init__(self, conn: Connection, lease_s: float, partition: Partition = WHOLE_LOG) -> None:
        self.conn = conn
        self.partition = partition
        self.store = conn.store
        self.jobs = conn.jobs
        self.state = SchedulerState()
        self.dispatcher = Dispatcher(conn.js, conn.pipeline, lease_s)
        self.snapshot_at = time.monotonic()  # none due at once: the replay just ended
        self.snapshot_seq = 0
        self.snapshot_every = SNAPSHOT_EVERY_S
        self.read_to = 0  # every event up to this sequence has been read and folded

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve forever; ``task_status.started()`` fires once the replay has caught up.

        The replay reads the log in bulk (no intents: the state is only rebuilt), then
        ``reconcile`` says what is left to do, then the live stream is followed from
        where the replay ended.
        """
        # Asked with a short timeout, again and again while a restarted server comes back:
        # a request lost to it would otherwise hold the start for the default 10 s.
        quick = self.conn.nc.jetstream(timeout=START_TIMEOUT_S)
        info = await patiently(
            self.conn, "the log was looked up", lambda: quick.stream_info(EVENTS_STREAM)
        )
        log_id = str(info.created)
        await self._restore(quick, log_id, info.state.last_seq)
        async with read_to_end(
            self.conn.js, self.conn.endpoint, from_seq=self.state.last_seq + 1
        ) as backlog:
            async for raw in backlog:
                await self._reload_finished(raw)
                self._fold(raw)
        replayed_to = self.state.last_seq
        intents = await self.dispatcher.skip_already_queued(self.state.reconcile())
        log.info("scheduler caught up at sequence %d", replayed_to)
        task_status.started()
        await self.carry_out(intents)
        live = follow_bulk(self.conn.js, self.conn.endpoint, from_seq=replayed_to + 1)
        sweep = time.monotonic() + SWEEP_S
        kept = await snapshots(self.conn.js, self.conn.replicas)
        try:
            async with read_ahead(live, buffer=0) as arrivals:
                with contextlib.suppress(anyio.EndOfStream):
                    while True:
                        arrived = await self._arrival(arrivals)
                        if arrived is not None:
                            await self._reload_finished(arrived)
                        intents = self._fold(arrived) if arrived is not None else []
                        intents += self.state.due(time.time())
                        if time.monotonic() >= sweep:  # every SWEEP_S, busy or idle
                            sweep = time.monotonic() + SWEEP_S
                            intents += self.state.stranded(time.time(), STRANDED_S)
                        await self.carry_out(intents, arrivals)
                        await self._snapshot(kept, log_id, due=True)
        finally:  # a clean stop leaves its state for the next start
            with anyio.CancelScope(shield=True), anyio.move_on_after(SNAPSHOT_ON_EXIT_S):
                await self._snapshot(kept, log_id, due=False)

    async def _restore(self, js: JetStreamContext, log_id: str, last_seq: int) -> None:
        """Start from this partition's snapshot, when there is one of this log."""
        key = self.partition.lease_key()
        try:
            data = await patiently(self.conn, "the snapshot was read", lambda: load(js, key))
        except Exception as exc:  # no snapshot to be had: the whole log, as before
            log.warning("scheduler snapshot not read (%s); replaying the whole log", exc)
            return
        restored = restore(data, self.partition, log_id, last_seq) if data else None
        if restored is not None:
            self.state, self.read_to = restored, restored.last_seq
            log.info(
                "scheduler restored %d open workflows at sequence %d",
                len(restored.workflows),
                restored.last_seq,
            )

    async def _snapshot(self, kept: ObjectStore, log_id: str, *, due: bool) -> None:
        """Keep the state (every SNAPSHOT_EVERY_S when ``due``, and whenever the log moved
        since the last one); a failure is reported and tried again next time."""
        if self.read_to == self.snapshot_seq:
            return
        if due and time.monotonic() - self.snapshot_at < self.snapshot_every:
            return
        self.snapshot_at = began = time.monotonic()
        try:
            data = take(self.state, self.partition, log_id, self.read_to)
            await save(kept, self.partition.lease_key(), data)
        except Exception as exc:
            log.warning("scheduler snapshot not kept (%s)", exc)
            return
        self.snapshot_seq = self.read_to
        # A million open jobs take seconds to keep: never more than 5 % of the time.
        self.snapshot_every = max(SNAPSHOT_EVERY_S, 20 * (time.monotonic() - began))

    async def _reload_finished(self, raw: RawBatch) -> None:
        """Read back from the log the completed workflows (let go of) that this batch
        has events of, up to the batch: a restart of one folds on its whole history."""
        evicted = self.state.finished
        if not evicted:
            return
        wanted = {
            subject.split(".", 2)[1] for subject in raw.subjects if not subject.endswith(ARCHIVED)
        } & evicted
        for wf in sorted(wanted):
            history: list[tuple[int, Event]] = []
            async with read_to_end(self.conn.js, self.conn.endpoint, workflow_filter(wf)) as found:
                async for batch in found:
                    history += [
                        (each.seq, each.event)
                        for each in decode_batch(batch).events
                        if each.seq < raw.seqs[0]
                    ]
            self.state.reload(wf, history)

    async def _arrival(self, arrivals: MemoryObjectReceiveStream[RawBatch]) -> RawBatch | None:
        """The next batch from the log, or None when a delayed retry is due first."""
        due = self.state.next_due()
        if due is None:
            return await arrivals.receive()
        with anyio.move_on_after(max(0.0, due - time.time())):
            return await arrivals.receive()
        return None

    def _fold(self, raw: RawBatch) -> list[Intent]:
        batch = decode_batch(self.partition.mine(raw))
        intents: list[Intent] = []
        for found in batch.in_order():
            if isinstance(found, Stored):
                intents += self.state.apply(found.seq, found.event)
            else:
                intents += self._ill_formed(found)
        for stray in self.state.out_of_place:
            log.warning(
                "out-of-place event %s#%d (%s of %s.%d): %s; not folded",
                EVENTS_STREAM, stray.seq, type(stray.event).__name__,
                stray.event.wf, stray.event.job, stray.reason,
            )  # fmt: skip
        self.state.out_of_place.clear()
        if raw.seqs:  # other partitions' events too: they are read, not read again
            self.state.last_seq = max(self.state.last_seq, raw.seqs[-1])
            self.read_to = max(self.read_to, raw.seqs[-1])
        return intents

    def _ill_formed(self, found: IllFormed) -> list[Intent]:
        """Report a stored message that is not an event (once per scheduler run)."""
        log.warning(
            "ill-formed message %s#%d on %s: %s",
            EVENTS_STREAM,
            found.seq,
            found.subject,
            found.reason,
        )
        job = job_of(found.subject)
        if job is None:
            self.state.last_seq = max(self.state.last_seq, found.seq)
            return []
        return self.state.note_ill_formed(found.seq, *job)

    async def carry_out(
        self,
        intents: Sequence[Intent],
        arrivals: MemoryObjectReceiveStream[RawBatch] | None = None,
    ) -> None:
        """Append the decisions, fold them back, and repeat until nothing follows.

        In chunks (:func:`next_chunk_size`): after replaying a million submitted jobs, the
        decisions, events and dispatches of all of them at once would need gigabytes.
        What a chunk's appends make necessary (a job made ready is to be dispatched) goes
        before the rest: the first jobs of a large submission reach the workers after
        one short round trip, not after the JobReady of every job. Between chunks, the
        batches that have come from ``arrivals`` meanwhile are folded, and what they make
        necessary goes next, starting again with a small chunk, so a completion is not
        kept waiting behind the blocking of a large DAG (an intent carried out late is
        decided on the job as it is then, like any other).
        """
        pending = deque(intents)
        size = FIRST_CHUNK
        while pending:
            began = time.monotonic()
            chunk = [pending.popleft() for _ in range(min(size, len(pending)))]
            dispatches = [i for i in chunk if isinstance(i, DispatchIntent)]
            decisions = self._commands(i for i in chunk if not isinstance(i, DispatchIntent))
            await self.dispatcher.dispatch(self.state, dispatches)
            follow_up = self._fold_own(await self.jobs.execute_many(decisions))
            size = next_chunk_size(size, time.monotonic() - began)
            # With nothing left of this batch, what arrived is the caller's next read.
            if arrivals is not None and pending and (arrived := self._fold_arrived(arrivals)):
                pending.extendleft(reversed(arrived))
                size = FIRST_CHUNK
            pending.extendleft(reversed(follow_up))
        completions = self.state.completions()
        if completions:
            await self._complete(completions)

    def _commands(self, intents: Iterable[Intent]) -> list[tuple[JobVersion, AnyCommand]]:
        """What each intent asks of its job, decided on the job as folded now."""
        now = time.time()
        commands: list[tuple[JobVersion, AnyCommand]] = []
        for intent in intents:
            assert not isinstance(intent, DispatchIntent | CompleteIntent)
            track = self.state.workflows[intent.wf]
            version = JobVersion(track.jobs[intent.job], track.seqs[intent.job])
            commands.append((version, _command_for(intent, track, now)))
        return commands

    def _fold_own(self, results: list[Stored | Conflict | IllegalTransition]) -> list[Intent]:
        """Fold this scheduler's own appends at once (reading them again from the stream
        is a no-op); what they make necessary. A refusal needs nothing: the job moved on
        since the intent was formed, and the event that moved it is folded in its turn."""
        follow_up: list[Intent] = []
        for result in results:
            if isinstance(result, Stored):
                follow_up += self.state.apply(result.seq, result.event)
            else:
                log.debug("skipped: %s", result)
        return follow_up

    async def _complete(self, completions: list[CompleteIntent]) -> None:
        """Append WorkflowCompleted of each finished workflow (CAS on its subject)."""
        appends: list[tuple[Event, int | None]] = []
        for intent in completions:
            completed = WorkflowCompleted(
                wf=intent.wf, at=time.time(), actor=ACTOR, counts=intent.counts
            )
            appends.append((completed, self.state.workflows[intent.wf].wf_seq))
        for (event, _), result in zip(appends, await self.store.append_many(appends), strict=True):
            if isinstance(result, Conflict):
                log.debug("conflict, will re-read: %s", result)
            else:
                self.state.apply(result, event)

    def _fold_arrived(self, arrivals: MemoryObjectReceiveStream[RawBatch]) -> list[Intent]:
        """Fold the batches that have arrived, without waiting for more."""
        intents: list[Intent] = []
        with contextlib.suppress(anyio.WouldBlock, anyio.EndOfStream):
            while True:
                intents += self._fold(arrivals.receive_nowait())
        return intents


def next_chunk_size(size: int, took_s: float) -> int:
    """The size of the next chunk of intents after one of ``size`` took ``took_s``.

    Chunks double from FIRST_CHUNK while they take under CHUNK_S, and halve past it,
    within CHUNK: each chunk costs a round trip, and events that arrive meanwhile wait
    for the chunk to end.
    """
    if took_s < CHUNK_S:
        return min(CHUNK, 2 * size)
    return max(FIRST_CHUNK, size // 2)


def _command_for(intent: Intent, track: WorkflowTrack, now: float) -> AnyCommand:
    match intent:
        case MakeReadyIntent(job=n):
            spec = track.spec(n)
            return MakeReady(
                at=now, actor=ACTOR, pool=spec.pool, hardware_class=spec.resources.hardware_class()
            )
        case BlockIntent(unmet=unmet):
            return Block(at=now, actor=ACTOR, unmet=unmet)
        case CancelIntent(reason=reason):
            return Cancel(at=now, actor=ACTOR, reason=reason)
    raise TypeError(f"no command for {intent!r}")
