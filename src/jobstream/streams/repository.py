"""The one way job events are written: load a job, decide, append with CAS, retry on
conflict (a repository in the ``eventsourcing`` sense).

A job is an aggregate whose history is its own subject. Every writer decides with
:func:`jobstream.decide.decide` on a :class:`JobVersion` — the job as folded and the
stream sequence of the event it was folded to — and appends what it decided naming that
sequence as the subject's last (``Nats-Expected-Last-Subject-Sequence``). When anything
else was written meanwhile the server refuses it (:class:`Conflict`): the writer that
can decide again (cancel, restart) loads the job again; one that cannot (a worker whose
attempt was taken over, a scheduler that will see the newer event in its fold) stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple, cast

import anyio

from jobstream.decide import AnyCommand, Job, decide, evolve, fold, from_last_event
from jobstream.errors import IllegalTransition
from jobstream.events import AnyEvent, Event, JobEvent
from jobstream.streams.store import Conflict, EventStore, Stored
from jobstream.streams.subjects import event_subject, job_subjects

log = logging.getLogger(__name__)
RETRY_DELAY_S = 1.0


class JobVersion(NamedTuple):
    """A job as a writer decides on it: folded state and the sequence it is folded to
    (0: nothing written yet, the job does not exist)."""

    job: Job
    seq: int


class Sent(NamedTuple):
    """An append on its way: the event, the version it was decided on, its future."""

    event: JobEvent
    version: JobVersion
    nonce: str
    future: asyncio.Future[int]


class Handled(NamedTuple):
    """What a retried command did: the version it was decided on, and the one after."""

    before: JobVersion
    after: JobVersion


class JobRepository:
    """Job aggregates over the EVENTS stream.

    ``patience_s``: how long an append is retried through a server outage before its
    error is raised (a retry carries the same message id, so it is recognised, never
    doubled; see :meth:`EventStore.settle`).
    """

    def __init__(self, store: EventStore, *, patience_s: float = 0.0) -> None:
        self.store = store
        self.patience_s = patience_s

    async def load(self, wf: str, index: int) -> JobVersion | None:
        """The job as its last event tells it (:func:`from_last_event`), at its subject's
        real last sequence (past ill-formed messages); None if it was never submitted."""
        latest = await self.store.latest(job_subjects(wf, index))
        if latest.event is None or not isinstance(latest.event.event, JobEvent):
            return None
        return JobVersion(from_last_event(wf, index, latest.event.event), latest.seq)

    async def _rebased(self, version: JobVersion) -> JobVersion | None:
        """After a refusal: the version at the subject's real last sequence when nothing
        but ill-formed messages came after the event it was decided on (they change no
        state); None when the job did move on."""
        job = version.job
        latest = await self.store.latest(job_subjects(job.wf, job.index))
        if latest.event is None or latest.event.seq != version.seq or latest.seq == version.seq:
            return None
        log.warning(
            "job %s.%d: ill-formed message(s) on its subject up to #%d; appending after them",
            job.wf,
            job.index,
            latest.seq,
        )
        return JobVersion(job, latest.seq)

    async def send(self, version: JobVersion, event: JobEvent, nonce: str = "") -> Sent:
        """Send one decided event now (pipelined); :meth:`settle` it for the new version.

        ``nonce`` tells apart two writers that share an actor name and would otherwise
        take each other's append for their own (two deliveries of one dispatch).
        """
        future = await self.store.send(event, version.seq, nonce)
        return Sent(event, version, nonce, future)

    async def settle(self, sent: Sent) -> JobVersion:
        """The version after a sent event; Conflict when the job had moved on (a refusal
        caused only by ill-formed messages is sent again after them). Other errors are
        retried (sent again) for ``patience_s``."""
        event, version, nonce, future = sent

        async def append(at: JobVersion, first: bool) -> int:
            pending = future if first else await self.store.send(event, at.seq, nonce)
            return await self.store.settle(pending, event, at.seq, nonce)

        version, seq = await self._patiently(version, append, type(event).__name__)
        return JobVersion(evolve(version.job, event), seq)

    async def execute(
        self, version: JobVersion, command: AnyCommand, nonce: str = ""
    ) -> JobVersion:
        """Decide ``command`` on ``version`` and append the events, all together (an
        atomic batch: a takeover is never half written) where the server can, else each
        on the one before; IllegalTransition (nothing written) or Conflict (the job moved
        on)."""
        events = decide(version.job, command)
        if len(events) > 1 and self.store.atomic:

            async def append(at: JobVersion, first: bool) -> int:
                return (await self.store.append_atomic(events, at.seq, nonce))[-1]

            what = "+".join(type(event).__name__ for event in events)
            version, seq = await self._patiently(version, append, what)
            return JobVersion(fold(version.job, events), seq)
        for event in events:
            version = await self.settle(await self.send(version, event, nonce))
        return version

    async def _patiently(
        self,
        version: JobVersion,
        append: Callable[[JobVersion, bool], Awaitable[int]],
        what: str,
    ) -> tuple[JobVersion, int]:
        """``append(version, first)`` until it stores, on the version it stored on: again
        after ill-formed messages when only they moved the job, again after other errors
        for ``patience_s`` (a retry carries the same message id: recognised, never
        doubled); Conflict when the job moved on."""
        deadline = time.monotonic() + self.patience_s
        first = True
        while True:
            try:
                return version, await append(version, first)
            except Conflict:
                rebased = await self._rebased(version)
                if rebased is None:
                    raise
                version = rebased
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("append of %s failed (%s); retrying", what, exc)
                await anyio.sleep(RETRY_DELAY_S)
            first = False

    async def handle(
        self, wf: str, index: int, command: Callable[[Job], AnyCommand]
    ) -> Handled | None:
        """Load the job, decide ``command(job)``, append; load and decide again while
        others write to it. None if the job does not exist; IllegalTransition when the
        command does not apply to the job as it is."""
        while True:
            version = await self.load(wf, index)
            if version is None:
                return None
            try:
                return Handled(version, await self.execute(version, command(version.job)))
            except Conflict:
                continue

    async def execute_many(
        self, items: Sequence[tuple[JobVersion, AnyCommand]]
    ) -> list[Stored | Conflict | IllegalTransition]:
        """Decide each command and append every event pipelined; per item, the stored
        event, or why nothing was stored. Each decision must be one event (the next
        one's expected sequence would not be known yet)."""
        decided: list[AnyEvent | IllegalTransition] = []
        for version, command in items:
            try:
                (event,) = decide(version.job, command)
            except IllegalTransition as illegal:
                decided.append(illegal)
                continue
            decided.append(cast(AnyEvent, event))
        appends: list[tuple[Event, int | None]] = [
            (event, version.seq)
            for event, (version, _) in zip(decided, items, strict=True)
            if not isinstance(event, IllegalTransition)
        ]
        stored = iter(await self.store.append_many(appends))
        results: list[Stored | Conflict | IllegalTransition] = []
        for each in decided:
            if isinstance(each, IllegalTransition):
                results.append(each)
                continue
            seq = next(stored)
            results.append(
                seq if isinstance(seq, Conflict) else Stored(seq, event_subject(each), each)
            )
        return results
