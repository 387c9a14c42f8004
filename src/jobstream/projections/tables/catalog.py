"""``files`` and ``user_data``: the named files and data each workflow declared."""

from __future__ import annotations

from jobstream.projections.model import ReadModel, own_fields


def _entries(field: str, value_type: str, cast: str) -> str:
    fields: dict[str, object] = {field: f"MAP(VARCHAR, {value_type})"}
    return f"""
        SELECT wf, unnest(map_keys(m)), unnest(map_values(m)){cast}
        FROM (SELECT e.wf AS wf, f.{field} AS m
              FROM {own_fields(fields, "WorkflowSubmitted")} WHERE cardinality(f.{field}) > 0)
    """


FILES = ReadModel(
    name="files",
    columns={"wf": "VARCHAR", "name": "VARCHAR", "path": "VARCHAR"},
    reads=frozenset({"WorkflowSubmitted"}),
    key=("wf", "name"),
    fold=_entries("files", "VARCHAR", ""),
)
USER_DATA = ReadModel(
    name="user_data",
    columns={"wf": "VARCHAR", "name": "VARCHAR", "data": "VARCHAR"},
    reads=frozenset({"WorkflowSubmitted"}),
    key=("wf", "name"),
    fold=_entries("user_data", "JSON", "::VARCHAR"),
)
