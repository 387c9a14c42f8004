"""Upgrade a log written with the first subject layout to the current one, in place.

Layout 1 stored a job's events on ``ev.<wf>.job.<n>`` (a workflow's on ``ev.<wf>.wf``,
a worker's on ``ev.worker.<id>``); layout 2 adds the event's kind as the last token so
that the server's subject permissions can tell who may append what (docs/security.md).
JetStream cannot rename stored messages, so the log is copied out to a side stream under
its new subjects, then EVENTS is made anew and the copy brought back: same messages,
same order, sequences renumbered from 1. Every step can be repeated after a crash: the
side stream is marked complete before EVENTS is touched, and a complete side stream is
the log from then on. WORK is purged (its dispatches name old sequences; the scheduler
dispatches every ready job again), and the projector rebuilds (its checkpoint no longer
matches the log).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from jobstream.codec import TYPE_HEADER
from jobstream.streams.pipeline import Pipeline
from jobstream.streams.reader import read_raw_batches
from jobstream.streams.subjects import ALL_EVENTS, EVENTS_STREAM, WORK_STREAM

log = logging.getLogger(__name__)

SIDE_STREAM = "EVENTS_UPGRADE"
SIDE_PREFIX = "upgrade."
COMPLETE_KEY = "jobstream.upgrade.messages"
ILL_FORMED_KIND = "IllFormed"  # the kind given to a stored message that names none
_KIND_TOKENS = {"wf": 3, "job": 4, "worker": 3}  # layout 1: tokens before the kind


class _Typed(msgspec.Struct):
    type: str = ""


def upgraded_subject(subject: str, headers: dict[str, str] | None, data: bytes) -> str:
    """The layout-2 subject of a message stored under ``subject`` in layout 1: the kind
    (its type header, else its payload's ``type``) appended; a subject already in layout
    2, or no event's at all, is kept."""
    parts = subject.split(".")
    if len(parts) < 3 or parts[0] != "ev":
        return subject
    aggregate = "worker" if parts[1] == "worker" else parts[2]
    if len(parts) != _KIND_TOKENS.get(aggregate, -1):
        return subject
    kind = (headers or {}).get(TYPE_HEADER) or _payload_type(data)
    return f"{subject}.{kind if kind.isidentifier() else ILL_FORMED_KIND}"


def _payload_type(data: bytes) -> str:
    try:
        return msgspec.json.decode(data, type=_Typed).type or ILL_FORMED_KIND
    except msgspec.DecodeError:
        return ILL_FORMED_KIND


async def upgrade_events(
    nc: NATS, js: JetStreamContext, config: api.StreamConfig, say: Callable[[str], None]
) -> int:
    """Rewrite EVENTS (layout 1) into ``config``'s layout; the number of messages kept."""
    side = await _side_info(js)
    if side is None or COMPLETE_KEY not in (side.config.metadata or {}):
        if side is not None:
            await js.delete_stream(SIDE_STREAM)  # an unfinished copy: EVENTS is intact
        end = (await js.stream_info(EVENTS_STREAM)).state.messages
        say(f"upgrading the event log to subject layout 2: copying {end:,} messages aside")
        await js.add_stream(_side_config())
        total = await _copy(nc, js, EVENTS_STREAM, ALL_EVENTS, _aside)
        info = await js.stream_info(SIDE_STREAM)
        info.config.metadata = {**(info.config.metadata or {}), COMPLETE_KEY: str(total)}
        await js.update_stream(info.config)
    else:
        total = int((side.config.metadata or {})[COMPLETE_KEY])
    say(f"upgrading the event log: writing {total:,} messages back")
    with contextlib.suppress(NotFoundError):  # gone already if a first try died here
        await js.delete_stream(EVENTS_STREAM)
    await js.add_stream(config)
    await _copy(nc, js, SIDE_STREAM, SIDE_PREFIX + ">", _back)
    await js.purge_stream(WORK_STREAM)
    await js.delete_stream(SIDE_STREAM)
    say(f"upgraded the event log: {total:,} messages (sequences renumbered; read models rebuild)")
    return total


def _aside(subject: str, headers: dict[str, str] | None, data: bytes) -> str:
    return SIDE_PREFIX + upgraded_subject(subject, headers, data)


def _back(subject: str, headers: dict[str, str] | None, data: bytes) -> str:
    return subject.removeprefix(SIDE_PREFIX)


async def upgrade_interrupted(js: JetStreamContext) -> bool:
    """Whether an upgrade stopped after its copy was complete: the copy is the log."""
    side = await _side_info(js)
    return side is not None and COMPLETE_KEY in (side.config.metadata or {})


async def _side_info(js: JetStreamContext) -> api.StreamInfo | None:
    try:
        return await js.stream_info(SIDE_STREAM)
    except NotFoundError:
        return None


def _side_config() -> api.StreamConfig:
    return api.StreamConfig(
        name=SIDE_STREAM,
        subjects=[SIDE_PREFIX + ">"],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
    )


async def _copy(
    nc: NATS,
    js: JetStreamContext,
    stream: str,
    source: str,
    rename: Callable[[str, dict[str, str] | None, bytes], str],
) -> int:
    """Publish every message matching ``source`` again under its new name, in order,
    headers kept but for the checks of its first append (they held then, not now)."""
    pipeline = Pipeline(nc)
    pipeline.start()
    copied = 0
    try:
        async for raw in read_raw_batches(js, source, follow=False, stream=stream):
            futures = []
            for subject, headers, data in zip(raw.subjects, raw.headers, raw.payloads, strict=True):
                kept = {k: v for k, v in (headers or {}).items() if not k.startswith("Nats-")}
                target = rename(subject, headers, data)
                futures.append(await pipeline.publish(target, data, kept or None))
            for future in futures:
                await pipeline.ack(future)
            copied += len(futures)
            if raw.caught_up:
                break
    finally:
        await pipeline.close()
    return copied
