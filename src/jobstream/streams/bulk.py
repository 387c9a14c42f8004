"""Read EVENTS fast: a bare NATS connection and a pull consumer.

nats-py turns every message into objects (Msg, headers dict, metadata dataclasses),
which costs more than a replay's work per event. A replay needs none of that: it asks
an ephemeral pull consumer (no acks) for large batches over a plain socket and has the
frames sliced straight into RawBatch columns (:class:`jobstream.streams.wire.FrameBuffer`),
without an ``await`` per message. Used for replays (rebuild, point-in-time queries, the
scheduler's start, the projector's catch-up) and by the two live readers that see every
event, the scheduler's and the projector's (:func:`follow_bulk`), which reconnect by
themselves. Servers that need TLS or credentials are read through nats-py instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator

import anyio
import nats.errors
from anyio.streams.memory import MemoryObjectReceiveStream
from nats.js import JetStreamContext

from jobstream.streams.pull import BulkUnavailable, PullReader, plain_addresses, pull_consumer
from jobstream.streams.reader import FILL_WAIT_S, read_raw_batches
from jobstream.streams.subjects import ALL_EVENTS
from jobstream.streams.urls import Endpoint
from jobstream.streams.wire import RawBatch, empty_batch

log = logging.getLogger(__name__)
BATCH = 20_000
EXPIRES_NS = 2_000_000_000
SILENCE_S = 10.0  # a follower hearing nothing this long past a heartbeat's due reconnects
FOLLOW_EXPIRES_NS = 300_000_000_000
MAX_RETRY_PAUSE_S = 2.0
WAITING_REQUESTS = 2
# Batches start this small and double up to the size asked for: the consumer starts
# working sooner, and a short read stays cheap.
FIRST_BATCH = 5_000


async def read_bulk(
    js: JetStreamContext,
    endpoint: Endpoint,
    subject_filter: str = ALL_EVENTS,
    *,
    from_seq: int = 1,
    size: int = BATCH,
) -> AsyncGenerator[RawBatch, None]:
    """Every event matching the filter from ``from_seq`` to the end of the stream, in
    batches growing to ``size``; the last one has ``caught_up`` set."""
    async with pull_consumer(js, endpoint, subject_filter, from_seq) as pull:
        # Nothing to read (a restart at the end of the log): a pull would wait it out.
        done, limit = pull.pending_at_start == 0, min(size, FIRST_BATCH)
        if done:
            yield empty_batch(caught_up=True)
        while not done:
            pull.request(limit, expires_ns=EXPIRES_NS, no_wait=True)
            batch = empty_batch()
            while not pull.take(batch, limit, past_end=False):
                if len(batch.seqs) == limit or pull.pending == 0:
                    break
                await pull.frames.fill()
            # The end: nothing was pending after the last delivery, or the server said
            # there was nothing (more) to deliver.
            done = (
                pull.pending == 0
                or pull.status == 404
                or (pull.status is not None and not batch.seqs)
            )
            limit = min(size, 2 * limit)
            if done:
                batch.caught_up = True
            if batch.seqs or done:
                yield batch


async def follow_bulk(
    js: JetStreamContext,
    endpoint: Endpoint,
    subject_filter: str = ALL_EVENTS,
    *,
    from_seq: int = 1,
    size: int = BATCH,
    poll_s: float = 1.0,
) -> AsyncGenerator[RawBatch, None]:
    """Like :func:`jobstream.streams.reader.read_raw_batches` following the stream
    forever, over a bare connection: the live readers of the scheduler and the projector,
    which see every event (nats-py's per-message objects would cost the server process
    more than its work on them).

    A batch holds everything that has arrived, and while a backlog streams in, what
    arrives within FILL_WAIT_S more; an empty caught-up batch comes every ``poll_s`` of
    quiet. A lost connection or consumer is read again from the event after the last one
    handed out, after a pause that grows, so no event is missed or repeated. Where a bare
    connection cannot go, nats-py's ordered consumer reads instead.
    """
    try:
        plain_addresses(endpoint.url)
    except BulkUnavailable:
        async for batch in read_raw_batches(js, subject_filter, from_seq=from_seq, poll_s=poll_s):
            yield batch
        return
    next_seq, failures = from_seq, 0
    while True:
        try:
            async with pull_consumer(js, endpoint, subject_filter, next_seq) as pull:
                async for batch in _follow(pull, size, poll_s):
                    failures = 0
                    if batch.seqs:
                        next_seq = batch.seqs[-1] + 1
                    yield batch
        except (OSError, nats.errors.Error) as exc:  # lost socket, silence (TimeoutError), API
            failures += 1
            pause = min(MAX_RETRY_PAUSE_S, 0.1 * 2**failures)
            log.warning(
                "event reader lost its connection (%s); reading again from %d in %.1f s",
                exc,
                next_seq,
                pause,
            )
            await anyio.sleep(pause)


async def _follow(pull: PullReader, size: int, poll_s: float) -> AsyncIterator[RawBatch]:
    heartbeat_ns = int(poll_s * 1e9)

    def top_up() -> None:
        # Two requests wait at all times, each for long: when one is used up the next is
        # already there, so no event waits at the server while this reader is busy (with
        # requests expiring every second, both could lapse during a projector's commit
        # and the events behind them waited a whole cycle more). Quiet is told by the
        # server's idle heartbeats, every poll_s.
        while len(pull.waiting) < WAITING_REQUESTS:
            pull.request(
                size, expires_ns=FOLLOW_EXPIRES_NS, no_wait=False, heartbeat_ns=heartbeat_ns
            )

    top_up()
    while True:
        batch = empty_batch()
        # The first events, or a heartbeat: the server's sign of life when all is quiet.
        with anyio.fail_after(poll_s + SILENCE_S):
            while not (news := pull.take(batch, size, past_end=True)) and not batch.seqs:
                await pull.frames.fill()
        top_up()
        # Then whatever else has arrived; while a backlog streams in, let the batch fill
        # for a moment, never waiting for what is not there.
        deadline = anyio.current_time() + FILL_WAIT_S
        while len(batch.seqs) < size:
            if pull.frames.receive():
                news = pull.take(batch, size, past_end=True) or news
                top_up()
                continue
            if pull.pending == 0 or anyio.current_time() >= deadline:
                break
            with anyio.move_on_after(deadline - anyio.current_time()):
                await pull.frames.readable()
        batch.caught_up = pull.pending == 0 or not batch.seqs
        if batch.seqs or news:
            yield batch


def read_to_end(
    js: JetStreamContext,
    endpoint: Endpoint,
    subject_filter: str = ALL_EVENTS,
    *,
    from_seq: int = 1,
    size: int = BATCH,
) -> contextlib.AbstractAsyncContextManager[MemoryObjectReceiveStream[RawBatch]]:
    """Batches of :func:`read_bulk`, or of nats-py's ordered reader where a bare
    connection cannot go, read ahead (:func:`read_ahead`)."""
    return read_ahead(_to_end(js, endpoint, subject_filter, from_seq, size))


async def _to_end(
    js: JetStreamContext, endpoint: Endpoint, subject_filter: str, from_seq: int, size: int
) -> AsyncGenerator[RawBatch, None]:
    try:
        async with contextlib.aclosing(
            read_bulk(js, endpoint, subject_filter, from_seq=from_seq, size=size)
        ) as batches:
            async for batch in batches:
                yield batch
    except BulkUnavailable:
        async for batch in read_raw_batches(js, subject_filter, from_seq=from_seq, follow=False):
            yield batch


@contextlib.asynccontextmanager
async def read_ahead(
    batches: AsyncGenerator[RawBatch, None], buffer: int = 1
) -> AsyncIterator[MemoryObjectReceiveStream[RawBatch]]:
    """The batches as a stream, the next one read while the caller works on this one;
    ``receive_nowait`` tells a busy caller whether one has arrived.

    A context manager (not a generator): leaving it early stops the reader cleanly.
    """
    send, receive = anyio.create_memory_object_stream[RawBatch](buffer)

    async def produce() -> None:
        async with send, contextlib.aclosing(batches):
            async for batch in batches:
                await send.send(batch)

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        with receive:
            yield receive
        tg.cancel_scope.cancel()
