"""``workers``: one row per worker: its capacity, pools, lifetime and how it stopped."""

from __future__ import annotations

from collections.abc import Sequence

from jobstream.events import WorkerStarted, WorkerStopped
from jobstream.projections.model import Deltas, ReadModel, Row
from jobstream.streams.store import Stored


def fold(batch: Sequence[Stored]) -> list[Row]:
    deltas = Deltas()
    for stored in batch:
        event = stored.event
        if isinstance(event, WorkerStarted):
            cap = event.capacity
            deltas.merge(
                (event.worker,),
                {
                    "worker": event.worker,
                    "host": event.host,
                    "num_cpus": cap.num_cpus,
                    "memory_mib": cap.memory_mib,
                    "num_gpus": cap.num_gpus,
                    "pools": ",".join(event.pools),
                    "walltime_s": event.walltime_s,
                    "started_at": event.at,
                },
            )
        elif isinstance(event, WorkerStopped):
            deltas.merge(
                (event.worker,),
                {
                    "worker": event.worker,
                    "stopped_at": event.at,
                    "stop_reason": event.reason,
                    "jobs_run": event.jobs_run,
                },
            )
    return deltas.result()


MODEL = ReadModel(
    name="workers",
    columns={
        "worker": "VARCHAR",
        "host": "VARCHAR",
        "num_cpus": "INTEGER",
        "memory_mib": "BIGINT",
        "num_gpus": "INTEGER",
        "pools": "VARCHAR",
        "walltime_s": "DOUBLE",
        "started_at": "TIMESTAMP",
        "stopped_at": "TIMESTAMP",
        "stop_reason": "VARCHAR",
        "jobs_run": "BIGINT",
    },
    key=("worker",),
    fold=fold,
)
