"""Read EVENTS in stream order, in batches, from any sequence: replay, tail and audit.

An ephemeral pull consumer with no acks delivers a subject filter in order; a fetch
returns what is already stored at once, so a batch is as large as the backlog allows.
``caught_up`` tells a reader when it has seen everything stored when it asked.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import msgspec
from nats.js import JetStreamContext, api

from jobstream import codec
from jobstream.streams.store import Stored
from jobstream.streams.subjects import EVENTS_STREAM

FETCH_BATCH = 2000


class Batch(msgspec.Struct, frozen=True):
    """Events in stream order; ``caught_up`` is True when nothing more was pending."""

    events: list[Stored]
    caught_up: bool


async def read_batches(
    js: JetStreamContext,
    subject_filter: str = "ev.>",
    *,
    from_seq: int = 1,
    follow: bool = True,
    poll_s: float = 1.0,
) -> AsyncIterator[Batch]:
    """Yield batches of decoded events; with ``follow`` it waits for new ones forever.

    An empty batch with ``caught_up`` is yielded whenever the reader is idle, so callers
    can act on "nothing more for now" (for example, end a non-following read).
    """
    config = api.ConsumerConfig(
        ack_policy=api.AckPolicy.NONE,
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(1, from_seq),
        inactive_threshold=300.0,
        mem_storage=True,
        max_waiting=16,
    )
    sub = await js.pull_subscribe(subject_filter, stream=EVENTS_STREAM, config=config)
    info = await sub.consumer_info()
    try:
        if info.num_pending == 0:
            yield Batch([], True)
            if not follow:
                return
        while True:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=poll_s)
            except TimeoutError:  # nats raises its own or asyncio's, both are TimeoutError
                yield Batch([], True)
                if not follow:
                    return
                continue
            events = []
            pending = 0
            for msg in msgs:
                meta = msg.metadata
                seq = meta.sequence.stream
                pending = meta.num_pending
                where = f"{EVENTS_STREAM}#{seq}"
                event = codec.decode(msg.data, msg.headers, where)
                events.append(Stored(seq, msg.subject, event, msg.data))
            yield Batch(events, pending == 0)
            if pending == 0 and not follow:
                return
    finally:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await sub.unsubscribe()
            await js.delete_consumer(EVENTS_STREAM, info.name)


async def read_until_caught_up(
    js: JetStreamContext, subject_filter: str = "ev.>", from_seq: int = 1
) -> AsyncIterator[Stored]:
    """Every stored event matching the filter, oldest first, then stop."""
    async for batch in read_batches(js, subject_filter, from_seq=from_seq, follow=False):
        for stored in batch.events:
            yield stored
