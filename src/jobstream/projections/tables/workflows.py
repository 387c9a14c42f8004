"""``workflows``: one row per workflow: what was submitted, when, and how it ended."""

from __future__ import annotations

import json
from collections.abc import Sequence

from jobstream.events import WorkflowCompleted, WorkflowSubmitted
from jobstream.projections.model import Deltas, ReadModel, Row
from jobstream.streams.store import Stored


def fold(batch: Sequence[Stored]) -> list[Row]:
    deltas = Deltas()
    for stored in batch:
        event = stored.event
        if isinstance(event, WorkflowSubmitted):
            deltas.merge(
                (event.wf,),
                {
                    "wf": event.wf,
                    "name": event.name,
                    "user": event.user,
                    "description": event.description,
                    "spec_digest": event.spec_digest,
                    "job_count": event.job_count,
                    "workdir": event.workdir,
                    "submitted_at": event.at,
                    "extras": json.dumps(event.extras, sort_keys=True),
                },
            )
        elif isinstance(event, WorkflowCompleted):
            deltas.merge(
                (event.wf,),
                {
                    "wf": event.wf,
                    "completed_at": event.at,
                    "final_counts": json.dumps(event.counts, sort_keys=True),
                },
            )
    return deltas.result()


MODEL = ReadModel(
    name="workflows",
    columns={
        "wf": "VARCHAR",
        "name": "VARCHAR",
        "user": "VARCHAR",
        "description": "VARCHAR",
        "spec_digest": "VARCHAR",
        "job_count": "BIGINT",
        "workdir": "VARCHAR",
        "submitted_at": "TIMESTAMP",
        "completed_at": "TIMESTAMP",
        "final_counts": "VARCHAR",
        "extras": "VARCHAR",
    },
    key=("wf",),
    fold=fold,
)
