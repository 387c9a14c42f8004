"""The scheduler's state at a stream sequence, kept in the object store, so that a
restart replays only the events after it: start-up time stays flat however long the
server has run.

A snapshot holds the open workflows only (completed ones are let go of first:
:meth:`SchedulerState.evict_completed`; their ids are kept, and their events are read
back from the log if one is restarted). It names the EVENTS stream it was taken of (its
creation time: a stream made again starts its sequences anew) and its partition; one
that does not fit, or that a newer or older jobstream wrote, is ignored and the log is
replayed from the start, as without one.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from jobstream.model import JobState
from jobstream.scheduler.partition import Partition
from jobstream.scheduler.state import SchedulerState, WorkflowTrack
from jobstream.streams.setup import ensure_objects
from jobstream.streams.subjects import SNAPSHOTS_BUCKET

log = logging.getLogger(__name__)
FORMAT = 1


class Snapshot(msgspec.Struct, kw_only=True):
    format: int = FORMAT
    stream_created: str  # the EVENTS stream it was taken of
    partition: tuple[int, int]
    last_seq: int
    workflows: list[WorkflowTrack]
    finished: list[str]
    delayed: list[tuple[float, str, int]]


def _counter(kind: type, found: Any) -> Any:
    """msgspec's decoding hook: a track's per-state counts (a Counter, which msgspec
    does not decode by itself); any other type is refused as msgspec's protocol asks."""
    if getattr(kind, "__origin__", kind) is Counter:
        return Counter({JobState(state): n for state, n in found.items()})
    raise NotImplementedError(kind)


_decoder = msgspec.msgpack.Decoder(Snapshot, dec_hook=_counter)
_encoder = msgspec.msgpack.Encoder()


def take(state: SchedulerState, partition: Partition, stream_created: str, read_to: int) -> bytes:
    """The state as it is now (completed workflows let go of first), as of ``read_to``:
    the last sequence read from the stream, every event up to it folded. Not the state's
    own last sequence: the scheduler folds its own appends as they are acknowledged,
    before the events of others that came first (read again after a restore, they are
    no-ops)."""
    state.evict_completed()
    return _encoder.encode(
        Snapshot(
            stream_created=stream_created,
            partition=(partition.index, partition.count),
            last_seq=read_to,
            workflows=list(state.workflows.values()),
            finished=sorted(state.finished),
            delayed=state.delayed,
        )
    )


def restore(
    data: bytes, partition: Partition, stream_created: str, stream_last_seq: int
) -> SchedulerState | None:
    """The state a snapshot holds, or None when it does not belong to this stream and
    partition (or cannot be read): then the log is replayed from the start."""
    try:
        found = _decoder.decode(data)
    except (msgspec.DecodeError, ValueError) as exc:
        log.warning("scheduler snapshot unreadable (%s); replaying the whole log", exc)
        return None
    if (
        found.format != FORMAT
        or found.stream_created != stream_created
        or found.partition != (partition.index, partition.count)
        or found.last_seq > stream_last_seq
    ):
        log.info("scheduler snapshot is of another log or partition; replaying the whole log")
        return None
    state = SchedulerState()
    state.workflows = {track.wf: track for track in found.workflows}
    state.finished = set(found.finished)
    state.delayed = found.delayed
    state.last_seq = found.last_seq
    return state


async def load(js: JetStreamContext, name: str) -> bytes | None:
    """The snapshot kept under ``name``, if any."""
    try:
        store = await js.object_store(SNAPSHOTS_BUCKET)
        found = await store.get(name)
    except NotFoundError:
        return None
    return found.data


async def save(store: ObjectStore, name: str, data: bytes) -> None:
    """Keep a snapshot under ``name`` (the object store replaces the previous one)."""
    await store.put(name, data)


async def snapshots(js: JetStreamContext, replicas: int) -> ObjectStore:
    """The SNAPSHOTS object store."""
    return await ensure_objects(js, SNAPSHOTS_BUCKET, replicas)
