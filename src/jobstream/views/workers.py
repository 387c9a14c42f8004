"""The workers: as their heartbeats (the WORKERS bucket) and the read models know them."""

from __future__ import annotations

import logging

import msgspec

from jobstream.config import Settings
from jobstream.errors import JobstreamError
from jobstream.model import Resources, WorkerHeartbeat, WorkerState
from jobstream.streams.buckets import current_values
from jobstream.streams.connection import Connection
from jobstream.streams.setup import ensure_workers
from jobstream.streams.subjects import WORKERS_BUCKET
from jobstream.views.sql import run_sql

log = logging.getLogger(__name__)
LIVE_WORKERS = (
    "SELECT num_cpus, memory_mib, num_gpus, 1 AS num_nodes, "
    "CAST(least(walltime_s, 1e9) AS BIGINT) AS runtime_s FROM workers WHERE stopped_at IS NULL"
)
MISSED_BEATS = 3  # a worker whose heartbeat is this many intervals late may be lost
LOST = "lost?"
_decoder = msgspec.json.Decoder(WorkerHeartbeat)


async def live_capacities(conn: Connection, settings: Settings) -> list[Resources] | None:
    """The capacity of every worker that started and has not stopped; None when there
    are no read models to ask."""
    try:
        rows = (await run_sql(conn, settings, LIVE_WORKERS)).to_pylist()
    except JobstreamError:
        return None
    return [Resources(**row) for row in rows]


def lost(beat: WorkerHeartbeat, now: float) -> bool:
    """Its heartbeats stopped coming without a clean stop: dead, or cut off from the
    server (a late heartbeat may yet come, hence ``lost?``)."""
    late = now - beat.heartbeat_at > MISSED_BEATS * beat.interval_s
    return late and beat.state is not WorkerState.STOPPED


class WorkerView(msgspec.Struct, frozen=True):
    """A worker's latest heartbeat, as seen at ``now``."""

    beat: WorkerHeartbeat
    now: float

    @property
    def lost(self) -> bool:
        return lost(self.beat, self.now)

    @property
    def state(self) -> str:
        """What the worker says it is doing, or ``lost?``."""
        return LOST if self.lost else self.beat.state.value

    @property
    def heartbeat_age_s(self) -> float:
        return max(0.0, self.now - self.beat.heartbeat_at)

    def as_json(self) -> dict[str, object]:
        """The stable ``--json`` shape: the heartbeat's fields as stored, its age, and
        whether the worker seems lost."""
        found: dict[str, object] = msgspec.to_builtins(self.beat)
        return {**found, "heartbeat_age_s": round(self.heartbeat_age_s, 1), "lost": self.lost}


async def worker_heartbeats(conn: Connection) -> list[WorkerHeartbeat]:
    """Every worker's latest heartbeat, by host and id (an entry that does not decode is
    logged and left out)."""
    await ensure_workers(conn.js, conn.replicas)
    found = []
    async for key, value in current_values(conn.js, WORKERS_BUCKET):
        try:
            found.append(_decoder.decode(value))
        except msgspec.DecodeError as exc:
            log.warning("WORKERS %s: not a heartbeat (%s)", key, exc)
    return sorted(found, key=lambda beat: (beat.host, beat.id))


async def worker_views(conn: Connection, now: float, *, stopped: bool = False) -> list[WorkerView]:
    """The workers as their heartbeats show them at ``now``; with ``stopped``, also
    those that stopped cleanly."""
    found = [WorkerView(beat, now) for beat in await worker_heartbeats(conn)]
    return [view for view in found if stopped or view.beat.state is not WorkerState.STOPPED]
