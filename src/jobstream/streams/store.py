"""Append events with optimistic concurrency, and read a job's latest event.

Every append names the sequence it decided on (``Nats-Expected-Last-Subject-Sequence``)
over its history's subjects (``...-Subject: ev.<wf>.job.<n>.*``: every kind of the
job's events); the server refuses it when anything else was written there since, which
is how two workers never both claim a job and how a fenced-off worker's late
completion is refused. Every append also carries a deterministic ``Nats-Msg-Id`` (the
subject, which names the kind, the expected sequence and the actor) so a retried publish
is recognised as the same fact, and a competitor's is not.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import NamedTuple

import msgspec
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from jobstream import codec
from jobstream.events import AnyEvent, Event
from jobstream.streams.pipeline import Pipeline
from jobstream.streams.subjects import (
    EVENTS_STREAM,
    EXPECTED_LAST_SUBJECT,
    aggregate_subjects,
    event_subject,
)
from jobstream.streams.wire import batch_headers

WRONG_LAST_SEQUENCE = 10071
DUPLICATE_IN_BATCH = 10201  # an atomic batch with a message id already stored


class Conflict(Exception):
    """The subject moved on since the writer decided: re-read and decide again."""


def wrong_last_sequence(error: BaseException | None) -> bool:
    """Whether a publish was refused because its subject moved on past the expected
    sequence (a CAS refusal; it may still be an earlier try of the same append)."""
    return isinstance(error, APIError) and error.err_code == WRONG_LAST_SEQUENCE


class Stored(msgspec.Struct, frozen=True):
    """An event as stored: its stream sequence, subject and (when read) its raw JSON."""

    seq: int
    subject: str
    event: AnyEvent
    data: bytes = b""


class IllFormed(msgspec.Struct, frozen=True):
    """A stored message that is not a jobstream event (garbage, an unknown type, a field
    missing): it changes no state, but it does move its subject's last sequence, so
    every writer appends after it and every reader reports it the same way."""

    seq: int
    subject: str
    reason: str
    data: bytes = b""


class Latest(NamedTuple):
    """A subject's last well-formed event (None: none yet) and its last sequence, which
    is that event's unless ill-formed messages were stored after it."""

    event: Stored | None
    seq: int


class EventStore:
    """The EVENTS stream seen as an append-only store of typed events."""

    def __init__(self, js: JetStreamContext, pipeline: Pipeline, *, atomic: bool = False) -> None:
        self.js = js
        self.pipeline = pipeline
        self.atomic = atomic  # the stream takes atomic batches (nats-server 2.12+)

    @staticmethod
    def _headers(
        event: Event, subject: str, expected: int | None, nonce: str, *, checked: bool = True
    ) -> dict[str, str]:
        """Type, version, message id; the expected sequence of the event's history (all
        its kinds) too unless not ``checked`` (a batch checks it on its first message)."""
        headers = codec.headers_for(event)
        if expected is not None and checked:
            headers[api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE] = str(expected)
            headers[EXPECTED_LAST_SUBJECT] = aggregate_subjects(event)
        msg_id = f"{subject}:{expected}:{event.actor}"  # the subject names the kind
        headers[api.Header.MSG_ID] = f"{msg_id}:{nonce}" if nonce else msg_id
        return headers

    async def send(
        self, event: Event, expected: int | None, nonce: str = ""
    ) -> asyncio.Future[int]:
        """Send one event now (pipelined); :meth:`settle` its future for the sequence.

        ``nonce`` tells apart two writers that share an actor name and would otherwise
        take each other's append for their own (two deliveries of one dispatch to the
        same worker).
        """
        subject = event_subject(event)
        return await self.pipeline.publish(
            subject, codec.encode(event), self._headers(event, subject, expected, nonce)
        )

    async def settle(
        self, future: asyncio.Future[int], event: Event, expected: int | None, nonce: str = ""
    ) -> int:
        """The stream sequence of a sent event, or Conflict when the subject moved on."""
        try:
            return await self.pipeline.ack(future)
        except APIError as exc:
            if not wrong_last_sequence(exc):
                raise
            headers = self._headers(event, event_subject(event), expected, nonce)
            return await self._already_stored(aggregate_subjects(event), headers, exc)

    async def append(self, event: Event, expected: int | None, nonce: str = "") -> int:
        """Store one event; returns its stream sequence or raises Conflict."""
        return await self.settle(await self.send(event, expected, nonce), event, expected, nonce)

    async def append_atomic(
        self, events: Sequence[Event], expected: int, nonce: str = ""
    ) -> list[int]:
        """Store several events of one history together or not at all (an atomic batch,
        CAS on the first); their sequences, or Conflict when the history moved on. A
        retry after a lost acknowledgement is recognised as for :meth:`append`."""
        batch_id = secrets.token_hex(8)
        last = len(events)
        for n, event in enumerate(events, 1):
            subject = event_subject(event)
            headers = self._headers(event, subject, expected, nonce, checked=n == 1)
            headers.update(batch_headers(batch_id, n, commit=n == last))
            if n < last:
                self.pipeline.post(subject, codec.encode(event), headers)
            else:
                future = await self.pipeline.publish(subject, codec.encode(event), headers)
        try:
            seq = await self.pipeline.ack(future)
        except APIError as exc:
            if exc.err_code not in (WRONG_LAST_SEQUENCE, DUPLICATE_IN_BATCH):
                raise
            seq = await self._already_stored(aggregate_subjects(events[0]), headers, exc)
        return list(range(seq - last + 1, seq + 1))

    async def _already_stored(self, history: str, headers: dict[str, str], exc: APIError) -> int:
        """After a CAS refusal: was it our own earlier try (lost ack)? Then that sequence.

        The server checks the expected sequence before the dedup window, so a retried
        append is recognised here, by its message id on the history's last message.
        """
        raw = await self._last_raw(history)
        if (
            raw is not None
            and (raw.headers or {}).get(api.Header.MSG_ID) == headers[api.Header.MSG_ID]
        ):
            assert raw.seq is not None
            return raw.seq
        raise Conflict(f"{history}: {exc.description}") from exc

    async def append_many(self, items: Sequence[tuple[Event, int | None]]) -> list[int | Conflict]:
        """Store many events pipelined; per item a sequence or a Conflict.

        Items are sent in order, so events of one subject keep their order.
        """
        futures = [await self.send(event, expected) for event, expected in items]
        results: list[int | Conflict] = []
        try:
            for future, (event, expected) in zip(futures, items, strict=True):
                try:
                    results.append(await self.settle(future, event, expected))
                except Conflict as conflict:
                    results.append(conflict)
        finally:
            _drop(futures[len(results) + 1 :])
        return results

    async def _last_raw(self, subject: str) -> api.RawStreamMsg | None:
        try:
            return await self.js.get_last_msg(EVENTS_STREAM, subject)
        except NotFoundError:
            return None

    async def first(self, subject: str) -> Stored | None:
        """The earliest event on a subject (e.g. a workflow's WorkflowSubmitted), past
        any ill-formed messages before it."""
        seq = 1
        while (message := await self._next(subject, seq)) is not None:
            if isinstance(message, Stored):
                return message
            seq = message.seq + 1
        return None

    async def _next(self, subject: str, seq: int) -> Stored | IllFormed | None:
        """The first message on a subject at or after ``seq``, or None."""
        try:
            raw = await self.js.get_msg(EVENTS_STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return None
        return stored_or_ill_formed(raw)

    async def last(self, subject: str) -> Stored | IllFormed | None:
        """The latest message on a subject (e.g. one job's current state), or None."""
        raw = await self._last_raw(subject)
        return None if raw is None else stored_or_ill_formed(raw)

    async def at(self, seq: int) -> Stored | IllFormed | None:
        """The message at a stream sequence, or None (never written, or deleted)."""
        try:
            raw = await self.js.get_msg(EVENTS_STREAM, seq=seq)
        except NotFoundError:
            return None
        return stored_or_ill_formed(raw)

    async def end(self) -> int:
        """The stream's last sequence (0 while empty)."""
        return int((await self.js.stream_info(EVENTS_STREAM)).state.last_seq)

    async def latest(self, subject: str) -> Latest:
        """The subject's last well-formed event and its last sequence. One read, unless
        the last message is ill-formed: then the subject is read from its start (a job's
        subject holds a handful of messages)."""
        last = await self.last(subject)
        if last is None:
            return Latest(None, 0)
        if isinstance(last, Stored):
            return Latest(last, last.seq)
        found, seq = None, 1
        while seq <= last.seq and (message := await self._next(subject, seq)) is not None:
            if isinstance(message, Stored):
                found = message
            seq = message.seq + 1
        return Latest(found, last.seq)


def stored_or_ill_formed(raw: api.RawStreamMsg) -> Stored | IllFormed:
    assert raw.seq is not None
    return decoded(raw.seq, raw.subject or "", raw.headers, raw.data or b"")


def decoded(
    seq: int, subject: str, headers: dict[str, str] | None, data: bytes
) -> Stored | IllFormed:
    """A stored message as the event it is, or why it is none: every reader decides so.

    An event stored on another subject than its own is not one either: it would escape
    that subject's optimistic concurrency (a plain NATS client can publish anywhere).
    """
    try:
        event = codec.decode(data, headers, f"{EVENTS_STREAM}#{seq}")
    except codec.MalformedEvent as exc:
        return IllFormed(seq, subject, str(exc), data)
    own = event_subject(event)
    if own != subject:
        why = f"{EVENTS_STREAM}#{seq} is a {type(event).__name__} of {own}, stored on {subject}"
        return IllFormed(seq, subject, why, data)
    return Stored(seq, subject, event, data)


def _drop(futures: Sequence[asyncio.Future[int]]) -> None:
    """After a failure, the answers still to come are not wanted: those that came are
    retrieved (no "exception never retrieved" in the log), the others cancelled."""
    for future in futures:
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()
