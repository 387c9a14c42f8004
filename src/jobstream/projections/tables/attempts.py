"""``attempts``: one row per run of a job: who ran it, when, how it ended, what it used."""

from __future__ import annotations

from collections.abc import Sequence

from jobstream.decide import state_after
from jobstream.events import AttemptEnded, JobClaimed, JobStarted
from jobstream.projections.model import Deltas, ReadModel, Row
from jobstream.streams.store import Stored


def fold(batch: Sequence[Stored]) -> list[Row]:
    deltas = Deltas()
    for stored in batch:
        event = stored.event
        if isinstance(event, JobClaimed):
            facts: Row = {"worker": event.worker, "claimed_at": event.at, "lease_s": event.lease_s}
        elif isinstance(event, JobStarted):
            facts = {
                "worker": event.worker,
                "host": event.host,
                "pid": event.pid,
                "gpu_ids": ",".join(map(str, event.gpu_ids)),
                "started_at": event.at,
            }
        elif isinstance(event, AttemptEnded):
            facts = {
                "worker": event.worker,
                "outcome": state_after(event).value,
                "ended_at": event.at,
                "return_code": event.return_code,
                "exec_time_s": event.exec_time_s,
                "peak_memory_mib": event.peak_memory_mib,
                "cpu_time_s": event.cpu_time_s,
                "stdout": event.stdout,
                "stderr": event.stderr,
                "stderr_tail": event.stderr_tail,
            }
        else:
            continue
        key = (event.wf, event.job, event.attempt)
        deltas.merge(key, {"wf": event.wf, "job": event.job, "attempt": event.attempt, **facts})
    return deltas.result()


MODEL = ReadModel(
    name="attempts",
    columns={
        "wf": "VARCHAR",
        "job": "INTEGER",
        "attempt": "INTEGER",
        "worker": "VARCHAR",
        "host": "VARCHAR",
        "pid": "INTEGER",
        "gpu_ids": "VARCHAR",
        "lease_s": "DOUBLE",
        "claimed_at": "TIMESTAMP",
        "started_at": "TIMESTAMP",
        "ended_at": "TIMESTAMP",
        "outcome": "VARCHAR",
        "return_code": "INTEGER",
        "exec_time_s": "DOUBLE",
        "peak_memory_mib": "DOUBLE",
        "cpu_time_s": "DOUBLE",
        "stdout": "VARCHAR",
        "stderr": "VARCHAR",
        "stderr_tail": "VARCHAR",
    },
    key=("wf", "job", "attempt"),
    fold=fold,
)
