"""`jobstream sql` only reads the read models, on every path: through a running projector,
from its file, and as of a point in the past. Nothing writes tables or files, reads files,
changes settings, runs for ever or returns without bound (before: DROP TABLE, COPY … TO
and read_csv('/etc/passwd') all succeeded)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from jobstream.config import Settings
from jobstream.ops.submit import submit_workflow
from jobstream.projections.guard import QueryError, QueryLimits
from jobstream.projections.service import Projector
from jobstream.streams.connection import Connection
from jobstream.streams.subjects import EVENTS_STREAM
from jobstream.views.sql import answer, run_sql

from .helpers import workflow

HOSTILE = [
    ("DROP TABLE jobs", "only SELECT"),
    ("CREATE TABLE mine AS SELECT 1 AS a", "only SELECT"),
    ("DELETE FROM jobs", "only SELECT"),
    ("SELECT 1; DROP TABLE jobs", "one statement"),
    ("SET enable_external_access = true", "only SELECT"),
    ("COPY jobs TO '{out}'", "only SELECT"),
    ("SELECT * FROM read_csv('/etc/passwd')", "Permission"),
    ("SELECT * FROM read_text('/etc/hostname')", "Permission"),
    ("ATTACH '{out}.db' AS other", "only SELECT"),
    ("INSTALL httpfs", "only SELECT"),
]


async def refused(ask: object, sql: str, why: str) -> None:
    with pytest.raises(QueryError, match=why):
        await ask(sql)  # type: ignore[operator]


async def check_hostile(ask: object, tmp_path: Path) -> None:
    out = tmp_path / "stolen.csv"
    for sql, why in HOSTILE:
        await refused(ask, sql.format(out=out), why)
    assert not out.exists() and not (tmp_path / "stolen.csv.db").exists()
    rows = await ask("SELECT count(*) AS n FROM jobs")  # type: ignore[operator]
    assert rows.to_pylist() == [{"n": 2}]  # the table is still there


async def test_through_a_running_projector(
    conn: Connection, settings: Settings, tmp_path: Path
) -> None:
    await submit_workflow(conn, workflow(("a", "true", ()), ("b", "true", ())), workdir=".")
    projector = Projector(conn, settings.db_path(), QueryLimits(timeout_s=0.5, max_rows=10))
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq
        with anyio.fail_after(20):
            await projector.caught_up(last)

        async def ask(sql: str) -> object:
            return await run_sql(conn, settings, sql)

        await check_hostile(ask, tmp_path)
        await refused(ask, "SELECT count(*) FROM range(100000000000) a", "longer than 0.5 s")
        await refused(ask, "SELECT * FROM range(11)", "more than 10 rows")
        tg.cancel_scope.cancel()


async def test_from_the_file_and_as_of_a_point(
    conn: Connection, settings: Settings, tmp_path: Path
) -> None:
    await submit_workflow(conn, workflow(("a", "true", ()), ("b", "true", ())), workdir=".")
    projector = Projector(conn, settings.db_path())
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq
        with anyio.fail_after(20):
            await projector.caught_up(last)
        tg.cancel_scope.cancel()
    limited = settings.model_copy(update={"sql_timeout_s": 0.5, "sql_max_rows": 10})

    async def from_file(sql: str) -> object:
        return await run_sql(None, limited, sql)  # no projector: the file, read-only

    async def as_of(sql: str) -> object:
        return await answer(conn, limited, sql, str(last))

    for ask in (from_file, as_of):
        await check_hostile(ask, tmp_path)
        await refused(ask, "SELECT count(*) FROM range(100000000000) a", "longer than 0.5 s")
        await refused(ask, "SELECT * FROM range(11)", "more than 10 rows")
