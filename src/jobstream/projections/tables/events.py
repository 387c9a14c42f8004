"""``events``: every event, with its stream sequence, type, actor and JSON payload."""

from __future__ import annotations

from jobstream.projections.model import ReadModel, ts

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
        # zstd: JSON payloads compress well, and it writes faster than the default.
        "payload": "VARCHAR USING COMPRESSION zstd",
    },
    key=(),
    fold=f"SELECT seq, {ts()}, subject, e.type, version, e.wf, e.job, e.actor, payload FROM batch",
)
