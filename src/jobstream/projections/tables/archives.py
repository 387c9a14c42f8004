"""``archives``: one row per archived workflow: the Parquet object holding its events."""

from __future__ import annotations

from jobstream.projections.model import ReadModel, latest, own_fields, ts

ARCHIVED = "WorkflowArchived"
FIELDS: dict[str, object] = {
    "object": "VARCHAR", "events": "BIGINT", "first_seq": "BIGINT", "last_seq": "BIGINT",
    "size": "BIGINT", "digest": "VARCHAR",
}  # fmt: skip

MODEL = ReadModel(
    name="archives",
    columns={
        "wf": "VARCHAR",
        "object": "VARCHAR",
        "events": "BIGINT",
        "first_seq": "BIGINT",
        "last_seq": "BIGINT",
        "size": "BIGINT",
        "digest": "VARCHAR",
        "archived_at": "TIMESTAMP",
        "seq": "BIGINT",
    },
    reads=frozenset({ARCHIVED}),
    key=("wf",),
    fold=f"""
        SELECT e.wf, {", ".join(latest(f"f.{name}", ARCHIVED) for name in FIELDS)},
               {latest(ts(), ARCHIVED)}, max(seq)
        FROM {own_fields(FIELDS, ARCHIVED)}
        GROUP BY e.wf
    """,
)
