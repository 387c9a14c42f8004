"""Read EVENTS in stream order, in batches, from any sequence: replay, tail and audit.

An ordered push consumer (ephemeral, flow-controlled, gap-checked by the client) delivers
a subject filter in order; nats-py receives these several times faster than pull
fetches. Messages are buffered as they arrive and handed out as
batches as large as the backlog; ``caught_up`` says nothing more was stored when the
last message of the batch was sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from jobstream.streams.store import IllFormed, Stored, decoded
from jobstream.streams.subjects import ALL_EVENTS, EVENTS_STREAM
from jobstream.streams.wire import RawBatch, empty_batch, reply_position

MAX_BATCH = 20_000
BUFFER_LIMIT = 200_000  # client-side pending limit of the subscription
FILL_WAIT_S = 0.05  # how long a batch may wait to fill while a backlog streams in


class Batch(msgspec.Struct, frozen=True):
    """Decoded events in stream order, and the stored messages that are not events;
    ``caught_up`` is True when nothing more was pending."""

    events: list[Stored]
    caught_up: bool
    ill_formed: list[IllFormed] = []

    def in_order(self) -> list[Stored | IllFormed]:
        """Events and ill-formed messages together, in stream order."""
        if not self.ill_formed:
            return list(self.events)
        return sorted([*self.events, *self.ill_formed], key=lambda found: found.seq)


async def read_raw_batches(
    js: JetStreamContext,
    subject_filter: str = ALL_EVENTS,
    *,
    from_seq: int = 1,
    follow: bool = True,
    poll_s: float = 1.0,
    stream: str = EVENTS_STREAM,
) -> AsyncIterator[RawBatch]:
    """Yield batches of raw events; with ``follow`` it waits for new ones forever.

    An empty, caught-up batch is yielded whenever the reader is idle for ``poll_s``.
    """
    buffer: list[Msg] = []
    arrived = anyio.Event()

    async def on_message(msg: Msg) -> None:
        # Never block here: a stalled callback stalls nats-py's flow-control replies and
        # the ordered consumer stops delivering. Flow control itself bounds the buffer.
        buffer.append(msg)
        arrived.set()

    async def more(wait_s: float) -> None:
        """Wait up to ``wait_s`` for at least one more message."""
        nonlocal arrived
        arrived = anyio.Event()
        with anyio.move_on_after(wait_s):
            await arrived.wait()

    config = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, from_seq)
    )
    sub = await js.subscribe(
        subject_filter,
        stream=stream,
        ordered_consumer=True,
        cb=on_message,
        config=config,
        pending_msgs_limit=BUFFER_LIMIT,
    )
    try:
        info = await sub.consumer_info()
        # Nothing matches (delivered messages may still be on their way: then wait).
        delivered = info.delivered.consumer_seq if info.delivered else 0
        if info.num_pending == 0 and not delivered and not buffer:
            yield empty_batch(caught_up=True)
            if not follow:
                return
        while True:
            if not buffer:
                await more(poll_s)
                if not buffer:
                    yield empty_batch(caught_up=True)
                    if not follow:
                        return
                    continue
            # A backlog is being delivered: let the batch fill up (bigger batches are
            # much cheaper to apply), but never wait for messages that are not there.
            deadline = anyio.current_time() + FILL_WAIT_S
            while (
                len(buffer) < MAX_BATCH
                and _position(buffer[-1])[1] > 0
                and anyio.current_time() < deadline
            ):
                await more(deadline - anyio.current_time())
            taken = buffer[:MAX_BATCH]
            del buffer[:MAX_BATCH]
            batch = _columns(taken, caught_up=not buffer)
            yield batch
            if batch.caught_up and not follow:
                return
    finally:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await sub.unsubscribe()


def _position(msg: Msg) -> tuple[int, int]:
    found = reply_position(msg.reply or "")
    if found is not None:
        return found
    metadata = msg.metadata  # not a JetStream reply: let nats-py raise its error
    return metadata.sequence.stream, metadata.num_pending


def _columns(msgs: list[Msg], caught_up: bool) -> RawBatch:
    seqs = [_position(msg)[0] for msg in msgs]
    pending = _position(msgs[-1])[1]
    return RawBatch(
        seqs,
        [m.subject for m in msgs],
        [m.headers for m in msgs],
        [m.data for m in msgs],
        caught_up and pending == 0,
    )


def decode_batch(raw: RawBatch) -> Batch:
    """Decode every message of a raw batch; those that are not events come apart, for the
    reader to report (every reader sees the same ones)."""
    events: list[Stored] = []
    ill_formed: list[IllFormed] = []
    for seq, subject, headers, data in zip(
        raw.seqs, raw.subjects, raw.headers, raw.payloads, strict=True
    ):
        found = decoded(seq, subject, headers, data)
        if isinstance(found, Stored):
            events.append(found)
        else:
            ill_formed.append(found)
    return Batch(events, raw.caught_up, ill_formed)


async def read_batches(
    js: JetStreamContext,
    subject_filter: str = ALL_EVENTS,
    *,
    from_seq: int = 1,
    follow: bool = True,
    poll_s: float = 1.0,
) -> AsyncIterator[Batch]:
    """Like :func:`read_raw_batches`, decoded."""
    async for raw in read_raw_batches(
        js, subject_filter, from_seq=from_seq, follow=follow, poll_s=poll_s
    ):
        yield decode_batch(raw)


async def read_until_caught_up(
    js: JetStreamContext, subject_filter: str = ALL_EVENTS, from_seq: int = 1
) -> AsyncIterator[Stored]:
    """Every stored event matching the filter, oldest first, then stop."""
    async for batch in read_batches(js, subject_filter, from_seq=from_seq, follow=False):
        for stored in batch.events:
            yield stored
