"""What SQL users may run on the read models: one read-only statement, bounded.

``jobstream sql`` reaches the projector's own database (over NATS) or its file. Every
DuckDB database jobstream opens has file and network access switched off
(``enable_external_access``: no ``read_csv('/etc/passwd')``, ``COPY … TO``, ``ATTACH``,
extensions) and its configuration locked, so SQL cannot switch them back on; a user's
statement must be a single SELECT (or EXPLAIN of one), runs at most ``timeout_s``, and
may return at most ``max_rows`` rows. Exporting a result is the client's job
(``--format``, ``--output``).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import duckdb
import pyarrow as pa

from jobstream.config import Settings
from jobstream.errors import JobstreamError

# Settings of every database jobstream opens; ``lock_configuration`` follows its setup.
SANDBOX: dict[str, str | bool | int | float | list[str]] = {"enable_external_access": False}
ALLOWED = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
ROWS_PER_BATCH = 65_536


class QueryError(JobstreamError):
    """The query failed or was refused: the database's message, or why."""


class QueryLimits(NamedTuple):
    """How long a user's query may run and how many rows it may return."""

    timeout_s: float = 60.0
    max_rows: int = 1_000_000


DEFAULT_LIMITS = QueryLimits()


def limits_of(settings: Settings) -> QueryLimits:
    return QueryLimits(settings.sql_timeout_s, settings.sql_max_rows)


def lock(db: duckdb.DuckDBPyConnection) -> None:
    """No SQL may change the database's settings from now on."""
    db.execute("SET lock_configuration = true")


def read_only(cursor: duckdb.DuckDBPyConnection, sql: str, limits: QueryLimits) -> pa.Table:
    """Run a user's statement on ``cursor`` if it reads only; its rows as Arrow."""
    try:
        statements = cursor.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(" ".join(str(exc).split())) from exc
    if len(statements) != 1:
        raise QueryError(f"one statement at a time, please (this is {len(statements)})")
    kind = statements[0].type
    if kind not in ALLOWED:
        raise QueryError(f"read-only: only SELECT queries run here, not {kind.name}")
    timer = threading.Timer(limits.timeout_s, cursor.interrupt)
    timer.start()
    try:
        relation = cursor.sql(sql)
        if relation is None:  # pragma: no cover - a SELECT always has a result
            raise QueryError("the statement returned no result")
        reader = relation.to_arrow_reader(ROWS_PER_BATCH)
        batches, rows = [], 0
        for batch in reader:
            rows += batch.num_rows
            if rows > limits.max_rows:
                raise QueryError(
                    f"the result has more than {limits.max_rows:,} rows: "
                    "narrow it (WHERE, LIMIT) or aggregate"
                )
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.InterruptException as exc:
        raise QueryError(f"the query ran longer than {limits.timeout_s:g} s") from exc
    except duckdb.Error as exc:
        raise QueryError(" ".join(str(exc).split())) from exc
    finally:
        timer.cancel()
