"""Read a stretch of EVENTS fast, for replays: a bare NATS connection and a pull consumer.

nats-py turns every message into objects (Msg, headers dict, metadata dataclasses) at
~10 µs each, which caps a replay near 40,000 events/s here. A replay needs none of that:
it asks an ephemeral pull consumer (no acks) for large batches over a plain socket and
slices the protocol frames itself (``HMSG subject sid reply hdr_len total_len``), keeping
only what a RawBatch holds. Deliveries are sliced by one regular expression each, without
an ``await`` per message; of their headers only the ``Jobstream-*`` ones (what decoding
needs) are kept, as shared dicts. Anything else (pull statuses, pings, other reply
layouts) goes the general way. Used where a failure is cheap to report or retry (rebuild,
point-in-time queries, the projector's catch-up); live tailing stays with nats-py.
Servers that need TLS or credentials are read through nats-py instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from urllib.parse import urlsplit

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from nats.js import JetStreamContext, api

from jobstream import codec
from jobstream.streams.pipeline import pub_frame
from jobstream.streams.reader import RawBatch, read_raw_batches, reply_position
from jobstream.streams.subjects import EVENTS_STREAM

BATCH = 20_000
READ_CHUNK = 1 << 20
EXPIRES_NS = 2_000_000_000
# Batches start this small and double up to the size asked for: the consumer starts
# working sooner, and a short read stays cheap.
FIRST_BATCH = 5_000
# A delivery with the usual reply subject ``$JS.ACK.<stream>.<consumer>.<delivered>.<seq>.
# <consumer seq>.<time>.<pending>`` whose headers start with the two that jobstream writes
# first. Groups: subject, seq, pending, header size, total size, where the headers start,
# and the two headers' values (the key of their shared dict).
_DELIVERY = re.compile(
    rb"HMSG ([^ \r\n]+) [^ \r\n]+ \$JS\.ACK\.[^. \r\n]+\.[^. \r\n]+\.\d+\.(\d+)\.\d+\.\d+\.(\d+) "
    rb"(\d+) (\d+)\r\n()NATS/1\.0\r\nJobstream-Type: ([^\r\n]*\r\nJobstream-Version: [^\r\n]*)\r\n"
)
_VERSION_LINE = b"\r\nJobstream-Version: "
_JOBSTREAM_HEADER = re.compile(rb"\r\n(Jobstream-[^:\r]+): *([^\r]*)")
_SHARED_HEADERS_MAX = 1024
_shared_headers: dict[object, dict[str, str]] = {}  # by the header fields' bytes


class BulkUnavailable(Exception):
    """This server cannot be read with a bare connection (TLS, credentials)."""


def plain_address(url: str) -> tuple[str, int]:
    """Host and port of a ``nats://host:port`` URL without credentials, or BulkUnavailable."""
    parts = urlsplit(url)
    if parts.scheme not in ("nats", "") or parts.username or parts.password:
        raise BulkUnavailable(f"{url}: needs TLS or credentials")
    return parts.hostname or "127.0.0.1", parts.port or 4222


class _Frames:
    """Incremental parser of the server's protocol frames on one socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self.at = 0

    async def fill(self) -> None:
        chunk = await self.reader.read(READ_CHUNK)
        if not chunk:
            raise ConnectionError("the NATS server closed the connection")
        self.buffer = self.buffer[self.at :] + chunk
        self.at = 0

    def deliveries(self, batch: RawBatch, limit: int) -> int | None:
        """Move the complete deliveries at the front of the buffer into ``batch``, up to
        ``limit`` events or the end of the backlog; the pending count after the last one
        (None if none was there). The hot loop of a replay: ~2 µs per event."""
        seqs, subjects, headers, payloads = (
            batch.seqs,
            batch.subjects,
            batch.headers,
            batch.payloads,
        )
        buffer, at, pending = self.buffer, self.at, None
        match, size, count = _DELIVERY.match, len(buffer), len(seqs)
        while count < limit and pending != 0:
            found = match(buffer, at)
            if found is None:
                break
            subject, seq, left, header_size, total, _, fields = found.groups()
            start = found.start(6)
            payload_start, end = start + int(header_size), start + int(total)
            if end + 2 > size:
                break
            seqs.append(int(seq))
            subjects.append(subject.decode())
            shared = _shared_headers.get(fields)
            if shared is None:
                kind, _, version = fields.partition(_VERSION_LINE)
                shared = _share(
                    fields,
                    {codec.TYPE_HEADER: kind.decode(), codec.VERSION_HEADER: version.decode()},
                )
            headers.append(shared)
            payloads.append(buffer[payload_start:end])
            pending, at, count = int(left), end + 2, count + 1
        self.at = at
        return pending

    def incomplete(self) -> bool:
        """The buffer ends inside a frame: there is no whole line, or it starts a delivery
        whose body has not all arrived."""
        end = self.buffer.find(b"\r\n", self.at)
        return end < 0 or _DELIVERY.match(self.buffer, self.at) is not None

    async def line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n", self.at)) < 0:
            await self.fill()
        line = self.buffer[self.at : end]
        self.at = end + 2
        return line

    async def take(self, size: int) -> bytes:
        while len(self.buffer) - self.at < size + 2:
            await self.fill()
        data = self.buffer[self.at : self.at + size]
        self.at += size + 2
        return data


def _jobstream_headers(block: bytes) -> dict[str, str]:
    """The ``Jobstream-*`` fields of a header block, as a dict shared by equal blocks."""
    fields = tuple(_JOBSTREAM_HEADER.findall(block))
    shared = _shared_headers.get(fields)
    if shared is None:
        shared = _share(fields, {k.decode(): v.decode().strip() for k, v in fields})
    return shared


def _share(key: object, headers: dict[str, str]) -> dict[str, str]:
    if len(_shared_headers) < _SHARED_HEADERS_MAX:
        _shared_headers[key] = headers
    return headers


def _status(block: bytes) -> int | None:
    """The status code of a message's header block (a pull status), if it has one."""
    status = block[9:12]
    return int(status) if status.isdigit() else None


async def read_bulk(
    js: JetStreamContext,
    url: str,
    subject_filter: str = "ev.>",
    *,
    from_seq: int = 1,
    size: int = BATCH,
) -> AsyncGenerator[RawBatch, None]:
    """Every event matching the filter from ``from_seq`` to the end of the stream, in
    batches growing to ``size``; the last one has ``caught_up`` set."""
    host, port = plain_address(url)
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
    reader, writer = await asyncio.open_connection(host, port)
    frames = _Frames(reader, writer)
    inbox = f"_INBOX.bulk.{secrets.token_hex(8)}"
    try:
        if not (await frames.line()).startswith(b"INFO"):
            raise ConnectionError("not a NATS server")
        connect = {"verbose": False, "pedantic": False, "headers": True, "protocol": 1}
        writer.write(f"CONNECT {json.dumps(connect)}\r\nSUB {inbox}.* 1\r\n".encode())
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS_STREAM}.{info.name}"
        done, pulls, limit = False, 0, min(size, FIRST_BATCH)
        while not done:
            # Each request has its own reply subject: a late status of an earlier request
            # (addressed to its inbox) is told apart from this one's end.
            pulls += 1
            answer_to = f"{inbox}.{pulls}"
            current = answer_to.encode()
            request = json.dumps({"batch": limit, "expires": EXPIRES_NS, "no_wait": True}).encode()
            writer.write(pub_frame(next_subject, answer_to, request, None))
            batch = RawBatch([], [], [], [], caught_up=False)
            while True:
                pending = frames.deliveries(batch, limit)
                if pending == 0 or len(batch.seqs) == limit:
                    done = pending == 0
                    break
                if frames.incomplete():
                    await frames.fill()
                    continue
                line = await frames.line()
                if line.startswith(b"HMSG"):
                    _, subject, _, *rest = line.split(b" ")
                    reply = rest[0].decode() if len(rest) == 3 else ""
                    header_size, total = int(rest[-2]), int(rest[-1])
                    frame = await frames.take(total)
                    status = _status(frame[:header_size])
                    if status is not None:  # 404 no messages / 408 expired: request over
                        if subject != current:
                            continue
                        done = not batch.seqs or status == 404
                        break
                    position = reply_position(reply)
                    if position is None:
                        raise ConnectionError(f"not a JetStream delivery: {line[:200]!r}")
                    seq, pending = position
                    batch.seqs.append(seq)
                    batch.subjects.append(subject.decode())
                    batch.headers.append(_jobstream_headers(frame[:header_size]))
                    batch.payloads.append(frame[header_size:])
                    if len(batch.seqs) == limit or pending == 0:
                        done = pending == 0
                        break
                elif line.startswith(b"PING"):
                    writer.write(b"PONG\r\n")
                elif line.startswith(b"-ERR"):
                    raise ConnectionError(line.decode())
            limit = min(size, 2 * limit)
            if done:
                batch.caught_up = True
            if batch.seqs or done:
                yield batch
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        with contextlib.suppress(Exception):
            await js.delete_consumer(EVENTS_STREAM, info.name)


@contextlib.asynccontextmanager
async def read_to_end(
    js: JetStreamContext,
    url: str,
    subject_filter: str = "ev.>",
    *,
    from_seq: int = 1,
    size: int = BATCH,
) -> AsyncIterator[MemoryObjectReceiveStream[RawBatch]]:
    """Batches of :func:`read_bulk`, or of nats-py's ordered reader where a bare
    connection cannot go; the next batch is read while the caller works on this one.

    A context manager (not a generator): leaving it early stops the reader cleanly.
    """
    send, receive = anyio.create_memory_object_stream[RawBatch](1)

    async def produce() -> None:
        async with send:
            try:
                async with contextlib.aclosing(
                    read_bulk(js, url, subject_filter, from_seq=from_seq, size=size)
                ) as batches:
                    async for batch in batches:
                        await send.send(batch)
            except BulkUnavailable:
                async for batch in read_raw_batches(
                    js, subject_filter, from_seq=from_seq, follow=False
                ):
                    await send.send(batch)

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        with receive:
            yield receive
        tg.cancel_scope.cancel()
