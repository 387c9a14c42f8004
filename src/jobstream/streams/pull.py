"""One ephemeral pull consumer of EVENTS, read over a bare socket.

Pull requests go out framed by :mod:`jobstream.streams.wire`, and the deliveries that come
back are sliced straight into :class:`~jobstream.streams.wire.RawBatch` columns. The
server answers waiting requests in the order they came, so deliveries are counted against
the oldest one; each request has its own reply subject, so a status tells which one it
ends. It logs in and speaks TLS like nats-py (no slower fall-back for either).
"""

from __future__ import annotations

import collections
import contextlib
import json
import secrets
import socket
import ssl
from collections.abc import AsyncIterator
from typing import NamedTuple

import anyio
from nats.js import JetStreamContext, api

from jobstream.streams.subjects import EVENTS_STREAM, bulk_inbox, pull_subject
from jobstream.streams.urls import Address, Endpoint, addresses
from jobstream.streams.wire import (
    IDLE_HEARTBEAT,
    NO_MESSAGES,
    PING,
    PONG,
    REQUEST_EXPIRED,
    FrameBuffer,
    Message,
    RawBatch,
    hello,
    jobstream_headers,
    message,
    pub_frame,
    pull_request,
    reply_position,
    status_of,
)

READ_CHUNK = 1 << 20
DELETE_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 5.0
LOGIN_ATTEMPTS = 3  # see _log_in: a login refused while the server re-reads its users
LOGIN_RETRY_S = 0.05


class BulkUnavailable(Exception):
    """This server cannot be read with a bare connection (not a nats:// or tls:// URL)."""


def plain_addresses(url: str) -> list[Address]:
    """Where the servers of a ``nats://`` or ``tls://`` URL list (credentials included)
    are reached, or BulkUnavailable (e.g. a websocket URL)."""
    try:
        return addresses(url)
    except ValueError as exc:
        raise BulkUnavailable(str(exc)) from None


class Socket:
    """One non-blocking socket to the server and what it has received (:class:`FrameBuffer`).

    The socket is read directly rather than through a stream: :meth:`receive` takes what
    has arrived without waiting, so a follower that was busy hands out everything that
    came meanwhile as one batch. After :meth:`start_tls` the same goes through TLS
    (an in-memory TLS object between the socket and the frames).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = FrameBuffer()
        self.outgoing = b""
        self.tls: ssl.SSLObject | None = None
        self.sealed = ssl.MemoryBIO()  # TLS records: received, and to be sent
        self.to_send = ssl.MemoryBIO()

    async def start_tls(self, context: ssl.SSLContext, hostname: str) -> None:
        """Upgrade to TLS, as NATS does after its INFO, verifying the server."""
        self.tls = context.wrap_bio(self.sealed, self.to_send, server_hostname=hostname)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.send(b"")
                await self.readable()
                self._read_sealed()
        self.send(b"")

    def send(self, data: bytes) -> None:
        """Write now what the socket takes; the rest goes before the next wait."""
        if self.tls is not None:
            if data:
                self.tls.write(data)
            data = self.to_send.read()
        self.outgoing += data
        with contextlib.suppress(BlockingIOError):
            self.outgoing = self.outgoing[self.sock.send(self.outgoing) :]

    def receive(self) -> bool:
        """Append what has arrived, without waiting; False if nothing had."""
        if self.tls is None:
            chunk = self._recv()
            if chunk:
                self.received.feed(chunk)
            return bool(chunk)
        if not self._read_sealed():
            return False
        plain = bytearray()
        with contextlib.suppress(ssl.SSLWantReadError):
            while piece := self.tls.read(READ_CHUNK):
                plain += piece
        if plain:
            self.received.feed(bytes(plain))
        return True  # a record may be split: the caller waits for frames, not bytes

    def _read_sealed(self) -> bool:
        chunk = self._recv()
        if chunk:
            self.sealed.write(chunk)
        return bool(chunk)

    def _recv(self) -> bytes:
        try:
            chunk = self.sock.recv(READ_CHUNK)
        except BlockingIOError:
            return b""
        if not chunk:
            raise ConnectionError("the NATS server closed the connection")
        return chunk

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


class PullReader:
    """One ephemeral pull consumer (no acks) read over a bare socket: pull requests out,
    deliveries sliced into RawBatches.

    The server answers waiting requests in the order they came, so deliveries are counted
    against the oldest one; each request has its own reply subject, so a status tells
    which one it ends (and a late one of a request already over is ignored).
    """

    def __init__(self, frames: Socket, next_subject: str, inbox: str) -> None:
        self.frames = frames
        self.next_subject = next_subject
        self.inbox = inbox
        self.pulls = 0
        self.waiting: collections.deque[_Request] = collections.deque()
        self.pending: int | None = None  # stored after the last delivery, once known
        self.pending_at_start: int | None = None  # when the consumer was made
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
            if line.startswith((b"HMSG", b"MSG ")):  # MSG: a message stored without headers
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
        batch.headers.append(jobstream_headers(msg.header_block) if msg.header_block else None)
        batch.payloads.append(msg.payload)
        return self._delivered(1)


class Greeted(NamedTuple):
    """A bare connection past the server's INFO: whether it is TLS, and where it went."""

    frames: Socket
    secure: bool
    where: Address


@contextlib.asynccontextmanager
async def greeted(endpoint: Endpoint) -> AsyncIterator[Greeted]:
    """A bare connection past the server's INFO, and TLS when the server asks for it (as
    nats-py does), to the first server of the URL list that takes it, starting at a
    random one (a cluster's readers spread over its nodes). OSError (ssl.SSLError
    included) when none does."""
    found = plain_addresses(endpoint.url)
    start = secrets.randbelow(len(found))
    failed: OSError = ConnectionError(f"no server in {len(found)}")
    for where in found[start:] + found[:start]:
        try:
            sock = await anyio.to_thread.run_sync(
                socket.create_connection, (where.host, where.port), CONNECT_TIMEOUT_S
            )
        except OSError as exc:
            failed = exc
            continue
        async with _greeted(sock, endpoint, where) as done:
            yield done
        return
    raise failed


@contextlib.asynccontextmanager
async def _greeted(
    sock: socket.socket, endpoint: Endpoint, where: Address
) -> AsyncIterator[Greeted]:
    with sock:
        sock.setblocking(False)
        frames = Socket(sock)
        await frames.fill()
        if not frames.received.buffer.startswith(b"INFO"):
            raise ConnectionError("not a NATS server")
        while (greeting := frames.received.frame()) is None:
            await frames.fill()
        secure = bool(json.loads(greeting[0][len(b"INFO ") :]).get("tls_required"))
        if secure:
            await frames.start_tls(endpoint.tls or ssl.create_default_context(), where.host)
        yield Greeted(frames, secure, where)


async def reachable(endpoint: Endpoint) -> bool:
    """True when a NATS server answers at the address (its TLS handshake included: a
    server that asks for TLS would log a bare probe as a failed handshake). A server
    whose certificate is not trusted raises ssl.SSLError: that is no "unreachable"."""
    try:
        with anyio.fail_after(CONNECT_TIMEOUT_S):
            async with greeted(endpoint):
                return True
    except ssl.SSLError:
        raise
    except (OSError, TimeoutError, ValueError, BulkUnavailable):
        return False


async def _log_in(frames: Socket, greeting: bytes) -> None:
    """Send the login and wait for the server's answer to a PING behind it: the login is
    taken (ConnectionError, with the server's -ERR, when it is not).

    Waiting matters: nats-server re-reading its users (one added or revoked) refuses
    every connection that has not yet logged in at that moment, whoever it is; a
    reader that went on at once would lose its connection mid-read. Before the
    answer, that refusal is told apart and the login is tried again.
    """
    frames.send(greeting + PING)
    with anyio.fail_after(CONNECT_TIMEOUT_S):
        while True:
            found = frames.received.frame()
            if found is None:
                await frames.fill()
            elif found[0].startswith(b"PONG"):
                return
            elif found[0].startswith(b"-ERR"):
                raise ConnectionError(found[0].decode())
            elif found[0].startswith(b"PING"):
                frames.send(PONG)


@contextlib.asynccontextmanager
async def pull_consumer(
    js: JetStreamContext, endpoint: Endpoint, subject_filter: str, from_seq: int
) -> AsyncIterator[PullReader]:
    """An ephemeral consumer from ``from_seq`` and a bare connection reading it; both
    are gone on exit (the consumer also by itself, a minute after a crash). The bare
    connection logs in and uses TLS as nats-py does (verified as ``endpoint.tls`` says)."""
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
        for attempt in range(LOGIN_ATTEMPTS):
            await anyio.sleep(LOGIN_RETRY_S * attempt)
            async with greeted(endpoint) as (frames, secure, where):
                inbox = bulk_inbox(where.user, secrets.token_hex(8))
                try:
                    await _log_in(frames, hello(inbox, where.user, where.password, tls=secure))
                except ConnectionError:
                    if attempt == LOGIN_ATTEMPTS - 1:
                        raise
                    continue
                reader = PullReader(frames, pull_subject(EVENTS_STREAM, info.name), inbox)
                reader.pending_at_start = info.num_pending
                yield reader
                return
    finally:
        # Bounded: with the server gone this would wait out the request timeout.
        with anyio.move_on_after(DELETE_TIMEOUT_S, shield=True), contextlib.suppress(Exception):
            await js.delete_consumer(EVENTS_STREAM, info.name)
