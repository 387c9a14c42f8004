"""Pipelined JetStream publishes whose failures are reported, not lost.

nats-py's ``publish_async`` drops the acknowledgement of a refused publish: its reply
handler calls ``APIError.from_error``, which raises instead of returning, so the future
is never resolved and the caller waits forever (seen with every CAS refusal, error 10071).
This publisher sends each message with its own reply subject under one wildcard
subscription and resolves every future with the sequence or with the APIError.
"""

from __future__ import annotations

import asyncio
import json
from itertools import count

import anyio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import APIError

from jobstream.errors import ServerError

MAX_PENDING = 8000
ACK_TIMEOUT_S = 30.0


class Pipeline:
    """Publish many messages to JetStream without waiting for each acknowledgement."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.prefix = ""
        self.futures: dict[str, asyncio.Future[int]] = {}
        self.token_of: dict[asyncio.Future[int], str] = {}
        self.tokens = count()
        self.room = asyncio.Semaphore(MAX_PENDING)

    async def _start(self) -> None:
        self.prefix = self.nc.new_inbox()
        await self.nc.subscribe(f"{self.prefix}.*", cb=self._on_ack)

    async def _on_ack(self, msg: Msg) -> None:
        future = self.futures.pop(msg.subject[len(self.prefix) + 1 :], None)
        if future is None or future.done():
            return
        del self.token_of[future]
        self.room.release()
        try:
            reply = json.loads(msg.data)
        except ValueError:
            future.set_exception(APIError(description=f"bad acknowledgement {msg.data!r}"))
            return
        error = reply.get("error") if isinstance(reply, dict) else None
        if error:
            future.set_exception(
                APIError(
                    code=error.get("code"),
                    err_code=error.get("err_code"),
                    description=error.get("description"),
                )
            )
        else:
            future.set_result(int(reply["seq"]))

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> asyncio.Future[int]:
        """Send now; the future resolves to the stream sequence (or raises APIError)."""
        if not self.prefix:
            await self._start()
        await self.room.acquire()
        token = str(next(self.tokens))
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.futures[token] = future
        self.token_of[future] = token
        await self.nc.publish(subject, payload, reply=f"{self.prefix}.{token}", headers=headers)
        return future

    async def ack(self, future: asyncio.Future[int]) -> int:
        """The stream sequence of a publish; ServerError if no acknowledgement comes.

        A lost acknowledgement (server restarted mid-publish) must not hang the caller;
        publishing again with the same message id is safe (deduplicated or recognised).
        """
        with anyio.move_on_after(ACK_TIMEOUT_S):
            return await future
        token = self.token_of.pop(future, None)
        if token is not None and self.futures.pop(token, None) is not None:
            self.room.release()
        raise ServerError(f"JetStream did not acknowledge a publish in {ACK_TIMEOUT_S:.0f} s")
