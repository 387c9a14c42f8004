"""Create (idempotently) the streams, the LOGS object store and per-class WORK consumers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from jobstream.errors import ServerError
from jobstream.streams.layout import upgrade_events, upgrade_interrupted
from jobstream.streams.subjects import (
    ARCHIVE_BUCKET,
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    JOBS_BUCKET,
    LAYOUT,
    LAYOUT_KEY,
    LOGS_BUCKET,
    WORK_STREAM,
    WORK_SUBJECTS,
    WORKERS_BUCKET,
    class_consumer,
    class_subject,
    stream_api_subject,
)

log = logging.getLogger(__name__)
ALLOW_ATOMIC = "allow_atomic"

DEDUP_WINDOW_S = 120.0
REQUIREMENT_KEY = "jobstream.class"
POOL_KEY = "jobstream.pool"
WORKERS_MAX_AGE_S = 86_400.0  # a dead worker's last heartbeat is listed this long


def events_config(replicas: int = 1) -> api.StreamConfig:
    """The log: file storage, keep everything, direct gets for per-job reads."""
    return api.StreamConfig(
        num_replicas=replicas,
        name=EVENTS_STREAM,
        subjects=EVENTS_SUBJECTS,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        duplicate_window=DEDUP_WINDOW_S,
        allow_direct=True,
        metadata={LAYOUT_KEY: LAYOUT},
    )


def work_config(replicas: int = 1) -> api.StreamConfig:
    """Dispatches: a work queue, each message removed once a worker acks it."""
    return api.StreamConfig(
        num_replicas=replicas,
        name=WORK_STREAM,
        subjects=WORK_SUBJECTS,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.WORK_QUEUE,
        duplicate_window=DEDUP_WINDOW_S,
        allow_direct=True,
    )


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig, owner: bool) -> None:
    """Create the stream, or leave it as it is when it already exists (but the server's
    ``owner`` gives it at least ``config``'s replicas: a cluster grown from one node
    keeps its log as the setting says)."""
    assert config.name is not None
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
        return
    if owner:
        await _enough_replicas(js, info.config, config.num_replicas or 1)


async def _enough_replicas(js: JetStreamContext, found: api.StreamConfig, replicas: int) -> None:
    if (found.num_replicas or 1) < replicas:
        log.warning("%s: %d replicas → %d", found.name, found.num_replicas or 1, replicas)
        found.num_replicas = replicas
        await js.update_stream(found)


async def ensure_logs(js: JetStreamContext, replicas: int = 1) -> ObjectStore:
    """The LOGS object store (stdout/stderr of every attempt)."""
    return await ensure_objects(js, LOGS_BUCKET, replicas)


async def ensure_objects(js: JetStreamContext, bucket: str, replicas: int = 1) -> ObjectStore:
    """An object store on file storage (made if missing)."""
    try:
        return await js.object_store(bucket)
    except NotFoundError:
        return await js.create_object_store(
            bucket,
            config=api.ObjectStoreConfig(storage=api.StorageType.FILE, replicas=replicas),
        )


async def ensure_kv(
    js: JetStreamContext, bucket: str, replicas: int = 1, max_age_s: float | None = None
) -> KeyValue:
    """A key-value bucket keeping the latest value of each key (made if missing; a key
    not written for ``max_age_s`` vanishes)."""
    try:
        return await js.key_value(bucket)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_key_value(
            config=api.KeyValueConfig(
                bucket=bucket,
                history=1,
                storage=api.StorageType.FILE,
                replicas=replicas,
                ttl=max_age_s,
            )
        )


async def ensure_workers(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    """The WORKERS bucket: each worker's latest heartbeat, kept a day after its last."""
    return await ensure_kv(js, WORKERS_BUCKET, replicas, WORKERS_MAX_AGE_S)


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
    nc: NATS,
    js: JetStreamContext,
    upgrade: Callable[[str], None] | None = None,
    replicas: int = 1,
) -> None:
    """The log, in the subject layout this code reads and writes.

    A log written with an older layout (events without their kind as the last token)
    would be read as ill-formed messages and written to beside them: the server's owner
    (``upgrade``: how it tells its user) upgrades it; anyone else is refused, with the
    way out. An empty one is simply marked.
    """
    config = events_config(replicas)
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
        if upgrade is not None:  # the owner
            await _enough_replicas(js, info.config, replicas)
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
    nc: NATS, js: JetStreamContext, upgrade: Callable[[str], None] | None = None, replicas: int = 1
) -> None:
    """Everything jobstream needs on a server; safe to call from every process at start
    (only the server's owner gives ``upgrade``, see :func:`ensure_events`)."""
    await ensure_events(nc, js, upgrade, replicas)
    await ensure_stream(js, work_config(replicas), owner=upgrade is not None)
    await ensure_logs(js, replicas)
    if upgrade is not None:  # the owner: before any reader could make it with one replica
        await ensure_kv(js, JOBS_BUCKET, replicas)
        await ensure_workers(js, replicas)
        await ensure_objects(js, ARCHIVE_BUCKET, replicas)


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
