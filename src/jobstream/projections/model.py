"""A read model is a table plus a pure fold from a batch of stored events to its rows.

Upsert models have a key: their fold returns one *delta* row per key touched by the batch
(``None`` = unchanged), and the runner merges it into the table with COALESCE. Append
models have no key: every row is new. Adding a read model is one small module in
``jobstream.projections.tables`` that defines a :class:`ReadModel`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from jobstream.streams.store import Stored

Row = dict[str, Any]

ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us"),
}


@dataclass(frozen=True)
class ReadModel:
    """One DuckDB table: columns ``name -> SQL type``, key columns, and its fold."""

    name: str
    columns: dict[str, str]
    key: tuple[str, ...]
    fold: Callable[[Sequence[Stored]], list[Row]]

    def ddl(self) -> str:
        cols = [f'"{name}" {sql}' for name, sql in self.columns.items()]
        if self.key:
            cols.append(f"PRIMARY KEY ({_names(self.key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({', '.join(cols)})"

    def insert_sql(self, source: str) -> str:
        """INSERT from an Arrow relation; upserts merge non-null values into the row."""
        sql = f"INSERT INTO {self.name} SELECT * FROM {source}"
        if not self.key:
            return sql
        updates = ", ".join(
            f'"{c}" = COALESCE(EXCLUDED."{c}", {self.name}."{c}")'
            for c in self.columns
            if c not in self.key
        )
        return f"{sql} ON CONFLICT ({_names(self.key)}) DO UPDATE SET {updates}"

    def to_arrow(self, rows: list[Row]) -> pa.Table:
        arrays = {}
        for name, sql in self.columns.items():
            values = [row.get(name) for row in rows]
            if sql == "TIMESTAMP":
                values = [None if v is None else int(v * 1_000_000) for v in values]
            arrays[name] = pa.array(values, ARROW_TYPES[sql])
        return pa.table(arrays)


def _names(columns: tuple[str, ...]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


class Deltas:
    """Per-key delta rows of one batch, later values winning (coalesced per key)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[Any, ...], Row] = {}

    def merge(self, key: tuple[Any, ...], values: Row) -> None:
        row = self.rows.get(key)
        if row is None:
            self.rows[key] = values
        else:
            row.update(values)

    def result(self) -> list[Row]:
        return list(self.rows.values())
