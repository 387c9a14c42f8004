"""Reading a KV bucket: the current value of every key under a pattern."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import nats.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE

from jobstream.errors import ServerError
from jobstream.streams.subjects import kv_stream, kv_subject
from jobstream.streams.wire import reply_position

READ_TIMEOUT_S = 10.0


async def current_values(
    js: JetStreamContext, bucket: str, keys: str = ">"
) -> AsyncIterator[tuple[str, bytes]]:
    """Every current ``(key, value)`` under a key pattern, then stop (deleted keys left
    out).

    Not nats-py's KV watch: it reports "no more values" when nothing is pending on the
    server, even while values are already on their way to the client (a workflow
    without its summary, now and then). Here the last delivery says when it is the last.
    """
    prefix = kv_subject(bucket, "")
    sub = await js.subscribe(
        prefix + keys,
        stream=kv_stream(bucket),
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
    )
    try:
        info = await sub.consumer_info()
        if info.num_pending == 0 and not (info.delivered and info.delivered.consumer_seq):
            return  # nothing matches
        while True:
            try:
                msg = await sub.next_msg(timeout=READ_TIMEOUT_S)
            except nats.errors.TimeoutError as exc:
                raise ServerError(f"no reply reading {prefix}{keys}") from exc
            operation = (msg.headers or {}).get(KV_OP)
            if msg.data and operation not in (KV_DEL, KV_PURGE):
                yield msg.subject[len(prefix) :], msg.data
            position = reply_position(msg.reply or "")
            if position is None or position[1] == 0:
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
