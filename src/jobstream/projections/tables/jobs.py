"""``jobs``: one row per job with its current state and the facts of its latest attempt."""

from __future__ import annotations

import json
from collections.abc import Sequence

from jobstream.decide import state_after
from jobstream.events import (
    AttemptEnded,
    JobCanceled,
    JobClaimed,
    JobEvent,
    JobReady,
    JobStarted,
    JobSubmitted,
)
from jobstream.projections.model import Deltas, ReadModel, Row
from jobstream.streams.store import Stored


def fold(batch: Sequence[Stored]) -> list[Row]:
    deltas = Deltas()
    for stored in batch:
        event = stored.event
        if not isinstance(event, JobEvent):
            continue
        row: Row = {
            "wf": event.wf,
            "job": event.job,
            "state": state_after(event).value,
            "updated_at": event.at,
            "last_seq": stored.seq,
        }
        row.update(_facts(event))
        deltas.merge((event.wf, event.job), row)
    return deltas.result()


def _facts(event: JobEvent) -> Row:
    if isinstance(event, JobSubmitted):
        spec, res = event.spec, event.spec.resources
        return {
            "name": spec.name,
            "command": spec.command,
            "pool": spec.pool,
            "hardware_class": res.hardware_class(),
            "num_cpus": res.num_cpus,
            "memory_mib": res.memory_mib,
            "num_gpus": res.num_gpus,
            "runtime_s": res.runtime_s,
            "priority": spec.priority,
            "depends_on": json.dumps(list(spec.depends_on)),
            "attempt": 0,
            "submitted_at": event.at,
        }
    if isinstance(event, JobReady):
        return {"ready_at": event.at}
    if isinstance(event, JobClaimed):
        return {"attempt": event.attempt, "worker": event.worker, "claimed_at": event.at}
    if isinstance(event, JobStarted):
        return {"host": event.host, "started_at": event.at}
    if isinstance(event, AttemptEnded):
        return {
            "ended_at": event.at,
            "return_code": event.return_code,
            "exec_time_s": event.exec_time_s,
        }
    if isinstance(event, JobCanceled):
        return {"ended_at": event.at, "cancel_reason": event.reason}
    return {}


MODEL = ReadModel(
    name="jobs",
    columns={
        "wf": "VARCHAR",
        "job": "INTEGER",
        "name": "VARCHAR",
        "state": "VARCHAR",
        "attempt": "INTEGER",
        "worker": "VARCHAR",
        "host": "VARCHAR",
        "command": "VARCHAR",
        "pool": "VARCHAR",
        "hardware_class": "VARCHAR",
        "num_cpus": "INTEGER",
        "memory_mib": "BIGINT",
        "num_gpus": "INTEGER",
        "runtime_s": "BIGINT",
        "priority": "INTEGER",
        "depends_on": "VARCHAR",
        "submitted_at": "TIMESTAMP",
        "ready_at": "TIMESTAMP",
        "claimed_at": "TIMESTAMP",
        "started_at": "TIMESTAMP",
        "ended_at": "TIMESTAMP",
        "return_code": "INTEGER",
        "exec_time_s": "DOUBLE",
        "cancel_reason": "VARCHAR",
        "updated_at": "TIMESTAMP",
        "last_seq": "BIGINT",
    },
    key=("wf", "job"),
    fold=fold,
)
