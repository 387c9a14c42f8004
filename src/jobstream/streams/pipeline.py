"""Pipelined JetStream publishes whose failures are reported, not lost.

nats-py's ``publish_async`` drops the acknowledgement of a refused publish: its reply
handler calls ``APIError.from_error``, which raises instead of returning, so the future
is never resolved and the caller waits forever (seen with every CAS refusal, error 10071).
This publisher sends each message with its own reply subject under one wildcard
subscription and resolves every future with the sequence or with the APIError.

Publishes are coalesced: they gather for up to ``COALESCE_S`` and go out together, so the
many small appends of concurrent jobs cost one socket write (a write's CPU cost hardly
depends on what it carries) instead of one each. The delay is off the jobs' critical
path: claims are made ahead, and results are appended after the slot is free. The
gathered messages are framed by :func:`jobstream.streams.wire.pub_frame` and handed to
the connection's write buffer as one block (:mod:`jobstream.streams.nats_adapter`):
nats-py's ``publish`` validates and frames each message in Python, which was a large
share of the scheduler's CPU when it dispatches.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from itertools import count

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import APIError

from jobstream.errors import ServerError
from jobstream.streams import nats_adapter
from jobstream.streams.wire import pub_ack, pub_frame

MAX_PENDING = 8000
ACK_TIMEOUT_S = 30.0
COALESCE_S = 0.002


class Pipeline:
    """Publish many messages to JetStream without waiting for each acknowledgement."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.prefix = ""
        # Unanswered publishes by reply token, oldest first, with the time they give up.
        self.futures: dict[str, tuple[asyncio.Future[int], float]] = {}
        self.expiry: asyncio.TimerHandle | None = None
        self.tokens = count()
        self.room = asyncio.Semaphore(MAX_PENDING)
        self.outbox: list[tuple[str, bytes, str, dict[str, str] | None]] = []
        self.queued = asyncio.Event()
        self.sender: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sending (the connection's owner calls :meth:`close` before closing).

        A plain task, not a task group: connections are opened and closed by context
        managers that may be entered and exited in different tasks (fixtures, clients).
        """
        self.sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def close(self) -> None:
        """Send what is left and stop; publishes still unanswered fail (no answer can
        come once the connection closes)."""
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sender
            self.sender = None
        await self._send_outbox()
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        for token in list(self.futures):
            self._fail(token, "the connection closed before JetStream acknowledged a publish")

    async def _send_loop(self) -> None:
        """Send what accumulated, every ``COALESCE_S`` while there is any."""
        while True:
            await self.queued.wait()
            await asyncio.sleep(COALESCE_S)
            await self._send_outbox()

    async def _send_outbox(self) -> None:
        """Hand everything queued to the connection. A publish the connection refuses
        (closed, buffer full while reconnecting, too large) fails its future, for the
        caller to retry; a refused fire-and-forget message is dropped, as a lost one
        would be."""
        self.queued.clear()
        outbox, self.outbox = self.outbox, []
        nc, frames = self.nc, []
        for subject, payload, reply, headers in outbox:
            if len(payload) > nc.max_payload:
                self._refuse(
                    reply,
                    f"publish to {subject} failed: {len(payload)} bytes "
                    f"is more than the server's maximum payload ({nc.max_payload})",
                )
            else:
                frames.append(pub_frame(subject, reply, payload, headers))
        block = b"".join(frames)
        refusal = nats_adapter.refusal(nc, len(block))
        if refusal:
            for subject, _, reply, _ in outbox:
                self._refuse(reply, f"publish to {subject} failed: {refusal}")
            return
        if block:
            await nats_adapter.write(nc, block)

    def _refuse(self, reply: str, reason: str) -> None:
        if reply:
            self._fail(reply[len(self.prefix) + 1 :], reason)

    def _fail(self, token: str, reason: str) -> None:
        found = self.futures.pop(token, None)
        if found is not None:
            self.room.release()
            if not found[0].done():
                found[0].set_exception(ServerError(reason))

    def _expire(self) -> None:
        """Fail the publishes unanswered for ACK_TIMEOUT_S: a lost acknowledgement (server
        restarted mid-publish) must not hang its caller. One timer for all of them, not
        one per publish (three per job on a worker)."""
        now = time.monotonic()
        expired = []
        for token, (_, deadline) in self.futures.items():  # in the order they were sent
            if deadline > now:
                break
            expired.append(token)
        for token in expired:
            self._fail(token, f"JetStream did not acknowledge a publish in {ACK_TIMEOUT_S:.0f} s")
        self.expiry = None
        if self.futures:
            _, deadline = next(iter(self.futures.values()))
            self._watch(deadline - now)

    def _watch(self, delay_s: float) -> None:
        self.expiry = asyncio.get_running_loop().call_later(delay_s, self._expire)

    async def _subscribe_acks(self) -> None:
        self.prefix = self.nc.new_inbox()
        await self.nc.subscribe(f"{self.prefix}.*", cb=self._on_ack)

    async def _on_ack(self, msg: Msg) -> None:
        found = self.futures.pop(msg.subject[len(self.prefix) + 1 :], None)
        if found is None:
            return
        future = found[0]
        self.room.release()  # also for a future whose waiter was cancelled
        if future.done():
            return
        try:
            future.set_result(pub_ack(msg.data))
        except APIError as refused:
            future.set_exception(refused)

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> asyncio.Future[int]:
        """Send now; the future resolves to the stream sequence (or raises APIError)."""
        if not self.prefix:
            await self._subscribe_acks()
        if self.sender is None:
            self.start()
        await self.room.acquire()
        token = str(next(self.tokens))
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.futures[token] = (future, time.monotonic() + ACK_TIMEOUT_S)
        if self.expiry is None:
            self._watch(ACK_TIMEOUT_S)
        self.outbox.append((subject, payload, f"{self.prefix}.{token}", headers))
        self.queued.set()
        return future

    def post(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        """Fire and forget, coalesced with the publishes and in order with them (e.g. a
        WORK message's ack, or a member of an atomic batch that is acknowledged as a
        whole)."""
        if self.sender is None:
            self.start()
        self.outbox.append((subject, payload, "", headers))
        self.queued.set()

    async def ack(self, future: asyncio.Future[int]) -> int:
        """The stream sequence of a publish; ServerError if none came within
        ACK_TIMEOUT_S of sending it (publishing again with the same message id is safe:
        deduplicated or recognised)."""
        return await future
