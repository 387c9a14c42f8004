"""Create (idempotently) the streams, the LOGS object store and per-class WORK consumers."""

from __future__ import annotations

import json
import logging
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, BadRequestError, NotFoundError
from nats.js.object_store import ObjectStore

from jobstream.streams.subjects import (
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
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


async def ensure_streams(js: JetStreamContext) -> None:
    """Everything jobstream needs on a server; safe to call from every process at start."""
    await ensure_stream(js, events_config())
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
