"""The one place that reaches into nats-py's private attributes, for what its public API
does not offer: handing an already framed block of publishes to the connection.

nats-py's ``publish`` validates and frames each message and then does exactly these two
steps; :class:`jobstream.streams.pipeline.Pipeline` frames many messages itself
(:func:`jobstream.streams.wire.pub_frame`) and hands them over together. Checked against
nats-py 2.16; a test exercises every function here against a real server.
"""

from __future__ import annotations

from nats.aio.client import Client as NATS


async def write(nc: NATS, block: bytes) -> None:
    """Queue framed bytes on the connection's write buffer and have them flushed."""
    await nc._send_command(block)
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()


def refusal(nc: NATS, size: int) -> str:
    """Why the connection would refuse ``size`` more bytes now, as nats-py's publish
    would; empty if it takes them (buffered while it reconnects)."""
    if nc.is_closed:
        return "the connection is closed"
    if nc.is_draining_pubs:
        return "the connection is draining"
    if not nc.is_connected and (
        nc._max_pending_size <= 0 or nc._pending_data_size + size > nc._max_pending_size
    ):
        return "the connection is down and its outbound buffer is full"
    return ""
