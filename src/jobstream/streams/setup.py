"""Create (idempotently) the streams, the LOGS object store and per-class WORK consumers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, BadRequestError, NotFoundError
from nats.js.object_store import ObjectStore

from jobstream.errors import ServerError
from jobstream.streams.layout import upgrade_events, upgrade_interrupted
from jobstream.streams.subjects import (
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    LAYOUT,
    LAYOUT_KEY,
    LOGS_BUCKET,
    WORK_STREAM,
    WORK_SUBJECTS,
    class_consumer,
    class_subject,
    stream_api_subject,
)

log = logging.getLogger(__name__)
ALLOW_ATOMIC = "allow_atomic"

DEDUP_WINDOW_S = 120.0
REQUIREMENT_KEY = "jobstream.class"
POOL_KEY = "jobstream.pool"


def events_config() -> api.StreamConfig:
    """The log: file storage, keep everything, direct gets for per-job reads."""
    return api.StreamConfig(
        name=EVENTS_STREAM,
        subjects=EVENTS_SUBJECTS,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        duplicate_window=DEDUP_WINDOW_S,
        allow_direct=True,
        metadata={LAYOUT_KEY: LAYOUT},
    )


def work_config() -> api.StreamConfig:
    """Dispatches: a work queue, each message removed once a worker acks it."""
    return api.StreamConfig(
        name=WORK_STREAM,
        subjects=WORK_SUBJECTS,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.WORK_QUEUE,
        duplicate_window=DEDUP_WINDOW_S,
        allow_direct=True,
    )


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> None:
    """Create the stream, or leave it as it is when it already exists."""
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)


async def ensure_logs(js: JetStreamContext) -> ObjectStore:
    """The LOGS object store (stdout/stderr of every attempt)."""
    try:
        return await js.object_store(LOGS_BUCKET)
    except NotFoundError:
        return await js.create_object_store(
            LOGS_BUCKET, config=api.ObjectStoreConfig(storage=api.StorageType.FILE)
        )


async def allow_atomic(nc: NATS, stream: str) -> bool:
    """Allow atomic batch publishes on ``stream`` (nats-server 2.12+); False where the
    server does not know them or refuses the change. Raw API calls: nats-py's
    StreamConfig drops the field."""
    try:
        config = (await _stream_api(nc, f"INFO.{stream}", {}))["config"]
        if not config.get(ALLOW_ATOMIC):
            config[ALLOW_ATOMIC] = True
            config = (await _stream_api(nc, f"UPDATE.{stream}", config)).get("config", {})
    except APIError as exc:
        log.warning("%s: no atomic batches (%s)", stream, exc)
        return False
    return bool(config.get(ALLOW_ATOMIC))


async def _stream_api(nc: NATS, call: str, request: dict[str, Any]) -> dict[str, Any]:
    reply = await nc.request(stream_api_subject(call), json.dumps(request).encode(), timeout=10)
    found: dict[str, Any] = json.loads(reply.data)
    if "error" in found:
        raise APIError.from_error(found["error"])
    return found


async def ensure_events(
    nc: NATS, js: JetStreamContext, upgrade: Callable[[str], None] | None = None
) -> None:
    """The log, in the subject layout this code reads and writes.

    A log written with an older layout (events without their kind as the last token)
    would be read as ill-formed messages and written to beside them: the server's owner
    (``upgrade``: how it tells its user) upgrades it; anyone else is refused, with the
    way out. An empty one is simply marked.
    """
    config = events_config()
    if await upgrade_interrupted(js):  # the log is in the upgrade's complete copy
        await _upgrade(nc, js, config, upgrade, "an upgrade of it was interrupted")
        return
    try:
        info = await js.stream_info(EVENTS_STREAM)
    except NotFoundError:
        await js.add_stream(config)
        return
    layout = (info.config.metadata or {}).get(LAYOUT_KEY, "1")
    if layout == LAYOUT:
        return
    if not info.state.messages:
        info.config.metadata = {**(info.config.metadata or {}), LAYOUT_KEY: LAYOUT}
        await js.update_stream(info.config)
        return
    why = f"it was written by an older jobstream (subject layout {layout}; this one reads {LAYOUT})"
    await _upgrade(nc, js, config, upgrade, why)


async def _upgrade(
    nc: NATS,
    js: JetStreamContext,
    config: api.StreamConfig,
    upgrade: Callable[[str], None] | None,
    why: str,
) -> None:
    if upgrade is None:
        raise ServerError(
            f"the {EVENTS_STREAM} stream needs an upgrade ({why}): start `jobstream server` "
            "(or `run`) of this version once on it, which upgrades it"
        )
    await upgrade_events(nc, js, config, upgrade)


async def ensure_streams(
    nc: NATS, js: JetStreamContext, upgrade: Callable[[str], None] | None = None
) -> None:
    """Everything jobstream needs on a server; safe to call from every process at start
    (only the server's owner gives ``upgrade``, see :func:`ensure_events`)."""
    await ensure_events(nc, js, upgrade)
    await ensure_stream(js, work_config())
    await ensure_logs(js)


async def ensure_class_consumer(
    js: JetStreamContext, pool: str, hardware_class: str, lease_s: float
) -> str:
    """The durable pull consumer shared by all workers that run this class; returns its name.

    Work-queue streams allow one consumer per subject, so every worker that fits a class
    binds to the same consumer. The requirement rides in the metadata so a worker can
    choose consumers without parsing names.
    """
    name = class_consumer(pool, hardware_class)
    config = api.ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=class_subject(pool, hardware_class),
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=lease_s,
        max_deliver=-1,
        max_ack_pending=100_000,
        max_waiting=4096,
        metadata={REQUIREMENT_KEY: hardware_class, POOL_KEY: pool},
    )
    try:
        await js.add_consumer(WORK_STREAM, config)
    except BadRequestError:
        # Exists with another lease: keep the existing one, leases are renewed anyway.
        await js.consumer_info(WORK_STREAM, name)
    return name
