"""``files`` and ``user_data``: the named files and data each workflow declared."""

from __future__ import annotations

import json
from collections.abc import Sequence

from jobstream.events import WorkflowSubmitted
from jobstream.projections.model import ReadModel, Row
from jobstream.streams.store import Stored


def fold_files(batch: Sequence[Stored]) -> list[Row]:
    return [
        {"wf": s.event.wf, "name": name, "path": path}
        for s in batch
        if isinstance(s.event, WorkflowSubmitted)
        for name, path in s.event.files.items()
    ]


def fold_user_data(batch: Sequence[Stored]) -> list[Row]:
    return [
        {"wf": s.event.wf, "name": name, "data": json.dumps(data, sort_keys=True)}
        for s in batch
        if isinstance(s.event, WorkflowSubmitted)
        for name, data in s.event.user_data.items()
    ]


FILES = ReadModel(
    name="files",
    columns={"wf": "VARCHAR", "name": "VARCHAR", "path": "VARCHAR"},
    key=("wf", "name"),
    fold=fold_files,
)
USER_DATA = ReadModel(
    name="user_data",
    columns={"wf": "VARCHAR", "name": "VARCHAR", "data": "VARCHAR"},
    key=("wf", "name"),
    fold=fold_user_data,
)
