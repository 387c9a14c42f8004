"""``files`` and ``user_data``: the named files and data each workflow declared."""

from __future__ import annotations

from jobstream.projections.model import ReadModel


def _entries(field: str, value: str) -> str:
    return f"""
        SELECT wf, unnest(map_keys(m)), unnest(map_values(m)){value}
        FROM (SELECT e.wf AS wf, e.{field} AS m FROM batch
              WHERE e.type = 'WorkflowSubmitted' AND cardinality(e.{field}) > 0)
    """


FILES = ReadModel(
    name="files",
    columns={"wf": "VARCHAR", "name": "VARCHAR", "path": "VARCHAR"},
    reads=frozenset({"WorkflowSubmitted"}),
    key=("wf", "name"),
    fold=_entries("files", ""),
)
USER_DATA = ReadModel(
    name="user_data",
    columns={"wf": "VARCHAR", "name": "VARCHAR", "data": "VARCHAR"},
    reads=frozenset({"WorkflowSubmitted"}),
    key=("wf", "name"),
    fold=_entries("user_data", "::VARCHAR"),
)
