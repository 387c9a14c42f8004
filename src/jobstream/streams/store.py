"""Append events with optimistic concurrency, and read a job's latest event.

Every append names the subject sequence it decided on (``Nats-Expected-Last-Subject-
Sequence``); the server refuses it when anything else was written to that subject since,
which is how two workers never both claim a job and how a fenced-off worker's late
completion is refused. Every append also carries a deterministic ``Nats-Msg-Id`` (the
subject, the expected sequence, the event type and the actor) so a retried publish is
recognised as the same fact, and a competitor's is not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from jobstream import codec
from jobstream.events import AnyEvent, Event
from jobstream.streams.pipeline import Pipeline
from jobstream.streams.subjects import EVENTS_STREAM, event_subject

WRONG_LAST_SEQUENCE = 10071


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


class EventStore:
    """The EVENTS stream seen as an append-only store of typed events."""

    def __init__(self, js: JetStreamContext, pipeline: Pipeline) -> None:
        self.js = js
        self.pipeline = pipeline

    @staticmethod
    def _headers(event: Event, subject: str, expected: int | None, nonce: str) -> dict[str, str]:
        headers = codec.headers_for(event)
        if expected is not None:
            headers[api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE] = str(expected)
        msg_id = f"{subject}:{expected}:{type(event).__name__}:{event.actor}"
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
            subject = event_subject(event)
            headers = self._headers(event, subject, expected, nonce)
            return await self._already_stored(subject, headers, exc)

    async def append(self, event: Event, expected: int | None, nonce: str = "") -> int:
        """Store one event; returns its stream sequence or raises Conflict."""
        return await self.settle(await self.send(event, expected, nonce), event, expected, nonce)

    async def _already_stored(self, subject: str, headers: dict[str, str], exc: APIError) -> int:
        """After a CAS refusal: was it our own earlier try (lost ack)? Then that sequence.

        The server checks the expected sequence before the dedup window, so a retried
        append is recognised here, by its message id on the subject's last message.
        """
        raw = await self._last_raw(subject)
        if (
            raw is not None
            and (raw.headers or {}).get(api.Header.MSG_ID) == headers[api.Header.MSG_ID]
        ):
            assert raw.seq is not None
            return raw.seq
        raise Conflict(f"{subject}: {exc.description}") from exc

    async def append_many(self, items: Sequence[tuple[Event, int | None]]) -> list[int | Conflict]:
        """Store many events pipelined; per item a sequence or a Conflict.

        Items are sent in order, so events of one subject keep their order.
        """
        futures = [await self.send(event, expected) for event, expected in items]
        results: list[int | Conflict] = []
        for future, (event, expected) in zip(futures, items, strict=True):
            try:
                results.append(await self.settle(future, event, expected))
            except Conflict as conflict:
                results.append(conflict)
        return results

    async def _last_raw(self, subject: str) -> api.RawStreamMsg | None:
        try:
            return await self.js.get_last_msg(EVENTS_STREAM, subject)
        except NotFoundError:
            return None

    async def first(self, subject: str) -> Stored | None:
        """The earliest event on a subject (e.g. a workflow's WorkflowSubmitted), or None."""
        try:
            raw = await self.js.get_msg(EVENTS_STREAM, seq=1, subject=subject, next=True)
        except NotFoundError:
            return None
        return _stored(subject, raw)

    async def last(self, subject: str) -> Stored | None:
        """The latest event on a subject (e.g. one job's current state), or None."""
        raw = await self._last_raw(subject)
        return None if raw is None else _stored(subject, raw)


def _stored(subject: str, raw: api.RawStreamMsg) -> Stored:
    assert raw.seq is not None and raw.data is not None
    event = codec.decode(raw.data, raw.headers, f"{EVENTS_STREAM}#{raw.seq}")
    return Stored(raw.seq, subject, event, raw.data)
