"""SQL for one submitter: the read models cut down to the rows of their own workflows.

A view or a WHERE clause would not do: a statement may name ``main.jobs`` or any table
directly. So the query runs on a database of its own, in memory, where each read model
is the caller's rows only (Arrow tables from the projector's file, registered without
copying again), with the ready-made views defined over them, and sandboxed like every
other (guard.py). The cost is reading the caller's rows once per query.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from jobstream.projections import counts
from jobstream.projections.guard import SANDBOX, QueryLimits, lock, read_only
from jobstream.projections.views import view_ddl

# Read models with a workflow column: each owner sees the rows of their workflows.
OWNED = (
    "workflows",
    "files",
    "user_data",
    "jobs",
    "attempts",
    "events",
    "archives",
    "allocations",
    counts.TABLE,
)
SHARED = ("workers",)  # the fleet is everyone's: what runs where, not whose


def owned_query(
    db: duckdb.DuckDBPyConnection, owner: str, sql: str, limits: QueryLimits
) -> pa.Table:
    """Run a read-only statement on ``owner``'s rows only; QueryError as guard.py's."""
    cursor = db.cursor()
    try:
        tables = {
            name: cursor.sql(
                f"SELECT * FROM {name} WHERE wf IN (SELECT wf FROM workflows WHERE user = $1)",
                params=[owner],
            ).to_arrow_table()
            for name in OWNED
        }
        tables |= {name: cursor.sql(f"SELECT * FROM {name}").to_arrow_table() for name in SHARED}
    finally:
        cursor.close()
    own = duckdb.connect(":memory:", config=SANDBOX)
    try:
        for name, table in tables.items():
            own.register(name, table)
        for ddl in view_ddl():
            own.execute(ddl)
        lock(own)
        return read_only(own, sql, limits)
    finally:
        own.close()
