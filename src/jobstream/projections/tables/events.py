"""``events``: every event, with its stream sequence, type, actor and JSON payload."""

from __future__ import annotations

from collections.abc import Sequence

from jobstream.events import JobEvent, WorkflowEvent
from jobstream.projections.model import ReadModel, Row
from jobstream.streams.store import Stored


def fold(batch: Sequence[Stored]) -> list[Row]:
    return [
        {
            "seq": s.seq,
            "event_time": s.event.at,
            "subject": s.subject,
            "type": type(s.event).__name__,
            "version": type(s.event).VERSION,
            "wf": s.event.wf if isinstance(s.event, WorkflowEvent) else None,
            "job": s.event.job if isinstance(s.event, JobEvent) else None,
            "actor": s.event.actor,
            "payload": s.data.decode(),
        }
        for s in batch
    ]


MODEL = ReadModel(
    name="events",
    columns={
        "seq": "BIGINT",
        "event_time": "TIMESTAMP",
        "subject": "VARCHAR",
        "type": "VARCHAR",
        "version": "INTEGER",
        "wf": "VARCHAR",
        "job": "INTEGER",
        "actor": "VARCHAR",
        "payload": "VARCHAR",
    },
    key=(),
    fold=fold,
)
