"""Read EVENTS fast: a bare NATS connection and a pull consumer.

nats-py turns every message into objects (Msg, headers dict, metadata dataclasses) at
~10 µs each, which caps a replay near 40,000 events/s here. A replay needs none of that:
it asks an ephemeral pull consumer (no acks) for large batches over a plain socket and
slices the protocol frames itself (``HMSG subject sid reply hdr_len total_len``), keeping
only what a RawBatch holds. Deliveries are sliced by one regular expression each, without
an ``await`` per message; of their headers only the ``Jobstream-*`` ones (what decoding
needs) are kept, as shared dicts. Anything else (pull statuses, pings, other reply
layouts) goes the general way. Used for replays (rebuild, point-in-time queries, the
scheduler's start, the projector's catch-up) and by the two live readers that see every
event, the scheduler's and the projector's (:func:`follow_bulk`), which reconnect by
themselves. Servers that need TLS or credentials are read through nats-py instead.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import secrets
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from urllib.parse import urlsplit

import anyio
import nats.errors
from anyio.streams.memory import MemoryObjectReceiveStream
from nats.js import JetStreamContext, api

from jobstream.streams.reader import FILL_WAIT_S, read_raw_batches
from jobstream.streams.subjects import ALL_EVENTS, EVENTS_STREAM, bulk_inbox, pull_subject
from jobstream.streams.wire import (
    IDLE_HEARTBEAT,
    NO_MESSAGES,
    PONG,
    REQUEST_EXPIRED,
    FrameBuffer,
    Message,
    RawBatch,
    empty_batch,
    hello,
    jobstream_headers,
    message,
    pub_frame,
    pull_request,
    reply_position,
    status_of,
)

log = logging.getLogger(__name__)
BATCH = 20_000
READ_CHUNK = 1 << 20
EXPIRES_NS = 2_000_000_000
SILENCE_S = 10.0  # a follower hearing nothing this long past a heartbeat's due reconnects
FOLLOW_EXPIRES_NS = 300_000_000_000
MAX_RETRY_PAUSE_S = 2.0
DELETE_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 5.0
WAITING_REQUESTS = 2
# Batches start this small and double up to the size asked for: the consumer starts
# working sooner, and a short read stays cheap.
FIRST_BATCH = 5_000


class BulkUnavailable(Exception):
    """This server cannot be read with a bare connection (TLS, credentials)."""


def plain_address(url: str) -> tuple[str, int]:
    """Host and port of a ``nats://host:port`` URL without credentials, or BulkUnavailable."""
    parts = urlsplit(url)
    if parts.scheme not in ("nats", "") or parts.username or parts.password:
        raise BulkUnavailable(f"{url}: needs TLS or credentials")
    return parts.hostname or "127.0.0.1", parts.port or 4222


class _Socket:
    """One non-blocking socket to the server and what it has received (:class:`FrameBuffer`).

    The socket is read directly rather than through a stream: :meth:`receive` takes what
    has arrived without waiting, so a follower that was busy hands out everything that
    came meanwhile as one batch.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = FrameBuffer()
        self.outgoing = b""

    def send(self, data: bytes) -> None:
        """Write now what the socket takes; the rest goes before the next wait."""
        self.outgoing += data
        with contextlib.suppress(BlockingIOError):
            self.outgoing = self.outgoing[self.sock.send(self.outgoing) :]

    def receive(self) -> bool:
        """Append what has arrived, without waiting; False if nothing had."""
        try:
            chunk = self.sock.recv(READ_CHUNK)
        except BlockingIOError:
            return False
        if not chunk:
            raise ConnectionError("the NATS server closed the connection")
        self.received.feed(chunk)
        return True

    async def readable(self) -> None:
        """Wait until something can be read (sending what is still queued first)."""
        while self.outgoing:
            await anyio.wait_writable(self.sock)
            self.send(b"")
        await anyio.wait_readable(self.sock)

    async def fill(self) -> None:
        """Append at least one more chunk."""
        while not self.receive():
            await self.readable()


class _Request:
    """A pull request not yet over: its reply subject and the deliveries it may bring."""

    __slots__ = ("left", "subject")

    def __init__(self, subject: bytes, left: int) -> None:
        self.subject = subject
        self.left = left


class _Pull:
    """One ephemeral pull consumer (no acks) read over a bare socket: pull requests out,
    deliveries sliced into RawBatches.

    The server answers waiting requests in the order they came, so deliveries are counted
    against the oldest one; each request has its own reply subject, so a status tells
    which one it ends (and a late one of a request already over is ignored).
    """

    def __init__(self, frames: _Socket, next_subject: str, inbox: str) -> None:
        self.frames = frames
        self.next_subject = next_subject
        self.inbox = inbox
        self.pulls = 0
        self.waiting: collections.deque[_Request] = collections.deque()
        self.pending: int | None = None  # stored after the last delivery, once known
        self.status: int | None = None  # of the status that ended a request since the last was made

    def request(self, size: int, *, expires_ns: int, no_wait: bool, heartbeat_ns: int = 0) -> None:
        """Ask for up to ``size`` more deliveries; with ``heartbeat_ns``, the server says
        it is there after each such stretch of quiet."""
        self.pulls += 1
        answer_to = f"{self.inbox}.{self.pulls}"
        self.waiting.append(_Request(answer_to.encode(), size))
        self.status = None
        body = pull_request(size, expires_ns=expires_ns, no_wait=no_wait, heartbeat_ns=heartbeat_ns)
        self.frames.send(pub_frame(self.next_subject, answer_to, body, None))

    def _left(self) -> int:
        return sum(request.left for request in self.waiting)

    def _delivered(self, count: int) -> bool:
        """Count deliveries against the waiting requests; True if one was used up."""
        used_up = False
        while count and self.waiting:
            oldest = self.waiting[0]
            taken = min(count, oldest.left)
            oldest.left -= taken
            count -= taken
            if oldest.left == 0:
                self.waiting.popleft()
                used_up = True
        return used_up

    def _ended(self, subject: bytes, status: int) -> bool:
        for request in self.waiting:
            if request.subject == subject:
                self.waiting.remove(request)
                self.status = status
                return True
        return False  # the late end of a request already used up

    def take(self, batch: RawBatch, limit: int, *, past_end: bool) -> bool:
        """Move the whole frames in the buffer into ``batch`` (deliveries) or act on them
        (statuses, pings), until it holds ``limit``, no request is waiting, or (unless
        ``past_end``) nothing more is pending after the last delivery; True if the
        server had news beyond deliveries: a request ended (a status ended it, or it
        brought all it asked for), or an idle heartbeat came."""
        received, news = self.frames.received, False
        while True:
            before = len(batch.seqs)
            pending = received.deliveries(batch, min(limit, before + self._left()), past_end)
            news = self._delivered(len(batch.seqs) - before) or news
            if pending is not None:
                self.pending = pending
            if len(batch.seqs) >= limit or not self.waiting or (pending == 0 and not past_end):
                return news
            found = received.frame()
            if found is None:
                return news
            line, body = found
            if line.startswith(b"HMSG"):
                news = self._other_message(message(line, body), batch) or news
                if self.pending == 0 and not past_end:
                    return news
            elif line.startswith(b"PING"):
                self.frames.send(PONG)
            elif line.startswith(b"-ERR"):
                raise ConnectionError(line.decode())

    def _other_message(self, msg: Message, batch: RawBatch) -> bool:
        """A message the fast path left: a pull status, or a delivery in another layout;
        True if it was news (a heartbeat, a request ended or used up)."""
        status = status_of(msg.header_block)
        if status == IDLE_HEARTBEAT:
            return True
        if status is not None:
            if status not in (NO_MESSAGES, REQUEST_EXPIRED):
                raise ConnectionError(f"pull request ended: {msg.header_block!r}")
            return self._ended(msg.subject.encode(), status)
        position = reply_position(msg.reply)
        if position is None:
            raise ConnectionError(f"not a JetStream delivery: {msg.subject} {msg.reply}")
        seq, self.pending = position
        batch.seqs.append(seq)
        batch.subjects.append(msg.subject)
        batch.headers.append(jobstream_headers(msg.header_block))
        batch.payloads.append(msg.payload)
        return self._delivered(1)


@contextlib.asynccontextmanager
async def _pull_consumer(
    js: JetStreamContext, url: str, subject_filter: str, from_seq: int
) -> AsyncIterator[_Pull]:
    """An ephemeral consumer from ``from_seq`` and a bare connection reading it; both
    are gone on exit (the consumer also by itself, a minute after a crash)."""
    address = plain_address(url)
    info = await js.add_consumer(
        EVENTS_STREAM,
        api.ConsumerConfig(
            filter_subject=subject_filter,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, from_seq),
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=60.0,
            mem_storage=True,
        ),
    )
    try:
        sock = await anyio.to_thread.run_sync(socket.create_connection, address, CONNECT_TIMEOUT_S)
        with sock:
            sock.setblocking(False)
            frames = _Socket(sock)
            await frames.fill()
            if not frames.received.buffer.startswith(b"INFO"):
                raise ConnectionError("not a NATS server")
            while frames.received.frame() is None:
                await frames.fill()
            inbox = bulk_inbox(secrets.token_hex(8))
            frames.send(hello(inbox))
            yield _Pull(frames, pull_subject(EVENTS_STREAM, info.name), inbox)
    finally:
        # Bounded: with the server gone this would wait out the request timeout.
        with anyio.move_on_after(DELETE_TIMEOUT_S, shield=True), contextlib.suppress(Exception):
            await js.delete_consumer(EVENTS_STREAM, info.name)


async def read_bulk(
    js: JetStreamContext,
    url: str,
    subject_filter: str = ALL_EVENTS,
    *,
    from_seq: int = 1,
    size: int = BATCH,
) -> AsyncGenerator[RawBatch, None]:
    """Every event matching the filter from ``from_seq`` to the end of the stream, in
    batches growing to ``size``; the last one has ``caught_up`` set."""
    async with _pull_consumer(js, url, subject_filter, from_seq) as pull:
        done, limit = False, min(size, FIRST_BATCH)
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
    url: str,
    subject_filter: str = ALL_EVENTS,
    *,
    from_seq: int = 1,
    size: int = BATCH,
    poll_s: float = 1.0,
) -> AsyncGenerator[RawBatch, None]:
    """Like :func:`jobstream.streams.reader.read_raw_batches` following the stream
    forever, over a bare connection: the live readers of the scheduler and the projector,
    which see every event (nats-py's per-message objects were a third of the server's
    event loop).

    A batch holds everything that has arrived, and while a backlog streams in, what
    arrives within FILL_WAIT_S more; an empty caught-up batch comes every ``poll_s`` of
    quiet. A lost connection or consumer is read again from the event after the last one
    handed out, after a pause that grows, so no event is missed or repeated. Where a bare
    connection cannot go, nats-py's ordered consumer reads instead.
    """
    try:
        plain_address(url)
    except BulkUnavailable:
        async for batch in read_raw_batches(js, subject_filter, from_seq=from_seq, poll_s=poll_s):
            yield batch
        return
    next_seq, failures = from_seq, 0
    while True:
        try:
            async with _pull_consumer(js, url, subject_filter, next_seq) as pull:
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


async def _follow(pull: _Pull, size: int, poll_s: float) -> AsyncIterator[RawBatch]:
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
    url: str,
    subject_filter: str = ALL_EVENTS,
    *,
    from_seq: int = 1,
    size: int = BATCH,
) -> contextlib.AbstractAsyncContextManager[MemoryObjectReceiveStream[RawBatch]]:
    """Batches of :func:`read_bulk`, or of nats-py's ordered reader where a bare
    connection cannot go, read ahead (:func:`read_ahead`)."""
    return read_ahead(_to_end(js, url, subject_filter, from_seq, size))


async def _to_end(
    js: JetStreamContext, url: str, subject_filter: str, from_seq: int, size: int
) -> AsyncGenerator[RawBatch, None]:
    try:
        async with contextlib.aclosing(
            read_bulk(js, url, subject_filter, from_seq=from_seq, size=size)
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
