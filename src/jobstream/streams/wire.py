"""The NATS protocol as bytes: the frames jobstream writes and the ones it parses itself.

Where nats-py's per-message objects cost more than the work they carry, jobstream frames
and parses the protocol here (and nowhere else): ``PUB``/``HPUB`` frames for pipelined
publishes, the hello and pull requests of the bare-socket reader, deliveries sliced
straight into :class:`RawBatch` columns, JetStream publish acknowledgements, and the
positions carried in JetStream reply subjects
(``$JS.ACK.<stream>.<consumer>.<delivered>.<seq>.<consumer seq>.<time>.<pending>``).
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

import msgspec
from nats.aio.msg import Msg
from nats.js.errors import APIError

from jobstream import codec
from jobstream.streams.subjects import ACK_PREFIX

ACK = b"+ACK"  # JetStream's positive acknowledgement of a delivered message
PING = b"PING\r\n"
PONG = b"PONG\r\n"
IDLE_HEARTBEAT = 100  # status codes of pull requests: a sign of life,
NO_MESSAGES, REQUEST_EXPIRED = 404, 408  # and the two ends of a request that are not errors
V1_TOKENS, V2_TOKENS = 9, 12  # the two layouts of a JetStream reply subject (below)


class RawBatch(msgspec.Struct):
    """Undecoded events in stream order, column by column."""

    seqs: list[int]
    subjects: list[str]
    headers: list[dict[str, str] | None]
    payloads: list[bytes]
    caught_up: bool


def empty_batch(caught_up: bool = False) -> RawBatch:
    return RawBatch([], [], [], [], caught_up)


def picked(raw: RawBatch, rows: list[int]) -> RawBatch:
    """The messages of a batch at these indexes."""
    return RawBatch(
        [raw.seqs[i] for i in rows],
        [raw.subjects[i] for i in rows],
        [raw.headers[i] for i in rows],
        [raw.payloads[i] for i in rows],
        raw.caught_up,
    )


# --- frames written -------------------------------------------------------------------


def pub_frame(subject: str, reply: str, payload: bytes, headers: dict[str, str] | None) -> bytes:
    """One ``PUB``/``HPUB`` frame (subjects and headers are jobstream's own).

    Keys are taken as plain strings: nats-py's header names are a ``str`` enum, which
    formats as ``Header.MSG_ID`` and would be sent as that.
    """
    target = f"{subject} {reply}" if reply else subject
    if not headers:
        return f"PUB {target} {len(payload)}\r\n".encode() + payload + b"\r\n"
    lines = "".join(f"{str.__str__(key)}: {value}\r\n" for key, value in headers.items())
    head = f"NATS/1.0\r\n{lines}\r\n".encode()
    size = len(head) + len(payload)
    return b"".join((f"HPUB {target} {len(head)} {size}\r\n".encode(), head, payload, b"\r\n"))


def batch_headers(batch_id: str, number: int, commit: bool = False) -> dict[str, str]:
    """The headers that make a publish the ``number``-th (from 1) of an atomic batch
    (nats-server 2.12+, on a stream that allows them); ``commit`` on the last: the
    server stores the batch whole, or none of it, and answers that one publish."""
    headers = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(number)}
    if commit:
        headers["Nats-Batch-Commit"] = "1"
    return headers


def hello(
    inbox: str, user: str | None = None, password: str | None = None, *, tls: bool = False
) -> bytes:
    """What a bare connection says first: CONNECT (headers on; the login, if any: a user
    and password, or a token), then
    a subscription to ``<inbox>.*`` for the answers to its pull requests."""
    connect: dict[str, object] = {
        "verbose": False,
        "pedantic": False,
        "headers": True,
        "protocol": 1,
        "tls_required": tls,
    }
    if user is not None and password is None:  # nats://TOKEN@host, as nats-py reads it
        connect["auth_token"] = user
    elif user is not None:
        connect.update(user=user, **{"pass": password})
    return f"CONNECT {json.dumps(connect)}\r\nSUB {inbox}.* 1\r\n".encode()


def pull_request(size: int, *, expires_ns: int, no_wait: bool, heartbeat_ns: int = 0) -> bytes:
    """The body of a JetStream pull request for up to ``size`` messages."""
    body: dict[str, object] = {"batch": size, "expires": expires_ns, "no_wait": no_wait}
    if heartbeat_ns:
        body["idle_heartbeat"] = heartbeat_ns
    return json.dumps(body).encode()


# --- answers parsed -------------------------------------------------------------------


class _Error(msgspec.Struct):
    code: int | None = None
    err_code: int | None = None
    description: str | None = None


class _PubAck(msgspec.Struct):
    seq: int | None = None
    error: _Error | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)


def pub_ack(data: bytes) -> int:
    """The stream sequence JetStream's answer to a publish gives; its APIError if it
    refused the publish (or the answer is not one). An empty answer is the server's "no
    responders" (503): no stream took the subject just now (a cluster electing a
    leader), which is worth trying again."""
    if not data:
        raise APIError(code=503, description="no response from stream")
    try:
        reply = _ack_decoder.decode(data)
    except msgspec.DecodeError:
        reply = _PubAck()
    if reply.error is not None:
        error = reply.error
        raise APIError(code=error.code, err_code=error.err_code, description=error.description)
    if reply.seq is None:
        raise APIError(description=f"bad acknowledgement {data!r}")
    return reply.seq


def reply_position(reply: str) -> tuple[int, int] | None:
    """(stream sequence, messages pending) from a JetStream reply subject; None if it is
    not one (nats-py's ``msg.metadata`` builds objects per message instead)."""
    tokens = _ack_tokens(reply)
    return None if tokens is None else (int(tokens[5]), int(tokens[8]))


def reply_delivery(reply: str) -> tuple[int, int] | None:
    """(stream sequence, times delivered) from a JetStream reply subject; None if it is
    not one (a worker tells two deliveries of one dispatch apart by them)."""
    tokens = _ack_tokens(reply)
    return None if tokens is None else (int(tokens[5]), int(tokens[4]))


def delivery_of(msg: Msg) -> tuple[int, int]:
    """Which delivery of its dispatch a message is: (stream sequence, delivery count),
    read off its ack subject without nats-py's metadata objects."""
    found = reply_delivery(msg.reply or "")
    if found is None:  # not a JetStream reply: let nats-py raise its error
        delivery = msg.metadata
        found = delivery.sequence.stream, delivery.num_delivered
    return found


def _ack_tokens(reply: str) -> list[str] | None:
    """The reply subject's tokens in the 9-token layout; the v2 layout, with domain and
    account hash after ``ACK`` (12 tokens; 11 without the trailing one), has those two
    left out."""
    tokens = reply.split(".")
    if len(tokens) == V1_TOKENS:
        return tokens
    if len(tokens) >= V2_TOKENS - 1:
        return tokens[:2] + tokens[4:]
    return None


# --- frames parsed --------------------------------------------------------------------

# A delivery with the 9-token reply subject whose headers start with the two that
# jobstream writes first. Groups: subject, seq, pending, header size, total size, where
# the headers start, and the two headers' values (the key of their shared dict).
_DELIVERY = re.compile(
    rb"HMSG ([^ \r\n]+) [^ \r\n]+ "
    + re.escape(ACK_PREFIX.encode())
    + rb"\.[^. \r\n]+\.[^. \r\n]+\.\d+\.(\d+)\.\d+\.\d+\.(\d+) "
    rb"(\d+) (\d+)\r\n()NATS/1\.0\r\nJobstream-Type: ([^\r\n]*\r\nJobstream-Version: [^\r\n]*)\r\n"
)
_VERSION_LINE = b"\r\nJobstream-Version: "
_JOBSTREAM_HEADER = re.compile(rb"\r\n(Jobstream-[^:\r]+): *([^\r]*)")
_SHARED_HEADERS_MAX = 1024
_shared_headers: dict[object, dict[str, str]] = {}  # by the header fields' bytes


class Message(NamedTuple):
    """A ``MSG``/``HMSG`` frame taken apart."""

    subject: str
    reply: str
    header_block: bytes
    payload: bytes


class FrameBuffer:
    """What a bare connection has received and not parsed yet.

    Nothing is taken from it before a whole frame is there, so a reader cancelled while
    waiting for more loses nothing.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.at = 0

    def feed(self, chunk: bytes) -> None:
        self.buffer = self.buffer[self.at :] + chunk
        self.at = 0

    def deliveries(self, batch: RawBatch, limit: int, past_end: bool) -> int | None:
        """Move the complete deliveries at the front of the buffer into ``batch``, up to
        ``limit`` events or (unless ``past_end``) the end of the backlog; the pending count
        after the last one (None if none was there). The hot loop of every bulk read:
        one regular expression per event, without building a message object."""
        seqs, subjects, headers, payloads = (
            batch.seqs,
            batch.subjects,
            batch.headers,
            batch.payloads,
        )
        buffer, at, pending = self.buffer, self.at, None
        match, size, count = _DELIVERY.match, len(buffer), len(seqs)
        while count < limit and (past_end or pending != 0):
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

    def frame(self) -> tuple[bytes, bytes] | None:
        """The next whole frame the fast path left: its first line and its body (empty
        for frames without one), or None until all of it has arrived."""
        buffer, at = self.buffer, self.at
        end = buffer.find(b"\r\n", at)
        if end < 0:
            return None
        line = buffer[at:end]
        if not line.startswith((b"HMSG", b"MSG")):
            self.at = end + 2
            return line, b""
        body_end = end + 2 + int(line.rsplit(b" ", 1)[1])
        if body_end + 2 > len(buffer):
            return None
        self.at = body_end + 2
        return line, buffer[end + 2 : body_end]


def message(line: bytes, body: bytes) -> Message:
    """Take apart a ``MSG subject sid [reply] size`` or ``HMSG subject sid [reply]
    header_size size`` frame."""
    _, subject, _, *rest = line.split(b" ")
    headed = line.startswith(b"HMSG")
    reply = rest[0].decode() if len(rest) == (3 if headed else 2) else ""
    header_size = int(rest[-2]) if headed else 0
    return Message(subject.decode(), reply, body[:header_size], body[header_size:])


def status_of(block: bytes) -> int | None:
    """The status code of a header block (``NATS/1.0 404 ...``: a pull status), if any."""
    status = block[9:12]
    return int(status) if status.isdigit() else None


def jobstream_headers(block: bytes) -> dict[str, str]:
    """The ``Jobstream-*`` fields of a header block, as a dict shared by equal blocks
    (all a reader needs: the ``Nats-*`` ones are dropped)."""
    fields = tuple(_JOBSTREAM_HEADER.findall(block))
    shared = _shared_headers.get(fields)
    if shared is None:
        shared = _share(fields, {k.decode(): v.decode().strip() for k, v in fields})
    return shared


def _share(key: object, headers: dict[str, str]) -> dict[str, str]:
    if len(_shared_headers) < _SHARED_HEADERS_MAX:
        _shared_headers[key] = headers
    return headers
