"""Read models ahead of their log (a power loss under a lazily synced store) are rebuilt
when the projector starts, KV records with them; read models that agree are kept."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jobstream.ops.submit import submit_workflow
from jobstream.projections.duck import DuckStore
from jobstream.projections.kv import job_records, workflow_records
from jobstream.projections.service import replay_into
from jobstream.streams.connection import Connection
from jobstream.streams.setup import ensure_streams
from jobstream.streams.subjects import EVENTS_STREAM

from .helpers import workflow
from .test_read_models import catch_up, dump


async def submitted(conn: Connection, name: str, jobs: int) -> str:
    spec = workflow(*((f"j{i}", "true", ()) for i in range(jobs)), name=name)
    return await submit_workflow(conn, spec, workdir=".")


async def lose_the_log(conn: Connection) -> None:
    """What a power loss before the first sync leaves: the stream starts again empty."""
    await conn.js.delete_stream(EVENTS_STREAM)
    await ensure_streams(conn.nc, conn.js)


async def assert_agrees_with_a_rebuild(conn: Connection, path: Path, tmp_path: Path) -> None:
    await replay_into(conn, tmp_path / "rebuilt.duckdb")
    assert dump(path) == dump(tmp_path / "rebuilt.duckdb")


@pytest.mark.parametrize("after_the_loss", [3, 30], ids=["log-shorter", "log-longer"])
async def test_read_models_of_a_lost_history_are_rebuilt(
    conn: Connection, tmp_path: Path, after_the_loss: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The log lost 10 jobs' events; writers went on (``after_the_loss`` jobs): the log
    ends before the checkpoint, or holds other events at its sequences."""
    path = tmp_path / "p.duckdb"
    lost = await submitted(conn, "lost", 10)
    await catch_up(conn, path)
    await lose_the_log(conn)
    kept = await submitted(conn, "kept", after_the_loss)
    with caplog.at_level(logging.WARNING):
        await catch_up(conn, path)
    assert "rebuilding them from the log" in caplog.text
    await assert_agrees_with_a_rebuild(conn, path, tmp_path)
    assert await job_records(conn.js, lost) == []
    assert [r.wf for r in await workflow_records(conn.js)] == [kept]
    assert len(await job_records(conn.js, kept)) == after_the_loss
    store = DuckStore(path, read_only=True)
    assert store.query("SELECT DISTINCT wf FROM jobs").to_pylist() == [{"wf": kept}]
    store.close()


async def test_read_models_in_step_with_the_log_are_kept(
    conn: Connection, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "p.duckdb"
    await submitted(conn, "first", 5)
    await catch_up(conn, path)
    await submitted(conn, "second", 5)
    with caplog.at_level(logging.WARNING):
        await catch_up(conn, path)
    assert "rebuilding" not in caplog.text
    await assert_agrees_with_a_rebuild(conn, path, tmp_path)
