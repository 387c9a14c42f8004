"""Archived workflows: out of EVENTS, into Parquet in ARCHIVE, and still every reader's."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from jobstream.archive.archiver import NotArchivable, announce
from jobstream.archive.store import archive_of
from jobstream.errors import ConfigError
from jobstream.model import Resources, WorkflowDef
from jobstream.ops.restart import restart_failed
from jobstream.ops.submit import submit_workflow
from jobstream.ops.workflows import ArchivedWorkflow
from jobstream.projections.duck import TABLES
from jobstream.projections.kv import job_records, workflow_records
from jobstream.projections.service import Projector, replay_into
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection
from jobstream.streams.setup import ensure_streams
from jobstream.streams.subjects import EVENTS_STREAM, workflow_filter
from jobstream.views.audit import wait_in_log
from jobstream.views.history import event_row, history
from jobstream.views.sql import as_of_query
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

from .helpers import workflow
from .test_read_models import catch_up, dump


def options(tmp_path: Path) -> WorkerOptions:
    return WorkerOptions(capacity=Resources(num_cpus=4, memory_mib=2048), log_dir=tmp_path / "logs")


async def rows_of(conn: Connection, wf: str, job: int | None = None) -> list[dict[str, object]]:
    return [event_row(found) async for batch in history(conn, wf, job) for found in batch]


async def in_log(conn: Connection, wf: str) -> dict[str, int]:
    """Messages per subject of the workflow still in EVENTS (a plain stream info)."""
    info = await conn.js.stream_info(EVENTS_STREAM, subjects_filter=workflow_filter(wf))
    return dict(info.state.subjects or {})


def specs() -> tuple[WorkflowDef, WorkflowDef]:
    """Two workflows (run at once, their events interleave in the log), one job failing."""
    return (
        workflow(*((f"a{i}", "true" if i != 3 else "exit 3", ()) for i in range(12))),
        workflow(*((f"b{i}", "true", (i - 1,) if i else ()) for i in range(8))),
    )


async def tables(projector: Projector) -> dict[str, list[dict[str, object]]]:
    return {
        t: (await projector.query(f"SELECT * FROM {t} ORDER BY ALL")).to_pylist() for t in TABLES
    }


JOBS = "SELECT wf, job, state, attempt FROM jobs ORDER BY ALL"


async def test_an_archived_workflow_leaves_the_log_and_every_reader_still_has_it(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await ensure_streams(conn.nc, conn.js, upgrade=lambda why: None)
    projector = Projector(conn, tmp_path / "live.duckdb")
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, 5).run)
        await tg.start(projector.run)
        await tg.start(Worker(conn, options(tmp_path)).run)
        first, second = specs()
        wf_a = await submit_workflow(conn, first, workdir=str(tmp_path))
        wf_b = await submit_workflow(conn, second, workdir=str(tmp_path))
        with anyio.fail_after(60):
            for wf in (wf_a, wf_b):
                await wait_in_log(conn, wf)
            await projector.caught_up(await conn.store.end())
        shown, shown_job = await rows_of(conn, wf_a), await rows_of(conn, wf_a, 3)
        seqs_b = [row["seq"] for row in await rows_of(conn, wf_b)]
        assert min(seqs_b) < shown[-1]["seq"]  # type: ignore[operator]  # interleaved
        middle = int(str(shown[len(shown) // 2]["seq"]))
        then = (await as_of_query(conn, JOBS, (middle, None))).to_pylist()
        before = await tables(projector)

        with pytest.raises(NotArchivable, match="no workflow"):
            await projector.archive("nosuchworkflow")
        messages = (await conn.js.stream_info(EVENTS_STREAM)).state.messages
        for hostile in ("*", ">", f"{wf_a}.*"):  # a filter over every workflow: refused
            with pytest.raises(ConfigError, match="is not a workflow id"):
                await projector.archive(hostile)
        assert (await conn.js.stream_info(EVENTS_STREAM)).state.messages == messages
        done = await projector.archive(wf_a)
        assert done["events"] == len(shown)
        again = await projector.archive(wf_a)  # once only: the same archive
        assert {k: v for k, v in again.items() if k != "seconds"} == {
            k: v for k, v in done.items() if k != "seconds"
        }

        # EVENTS holds only the announcement; B is untouched.
        assert await in_log(conn, wf_a) == {f"ev.{wf_a}.wf.WorkflowArchived": 1}
        assert sum((await in_log(conn, wf_b)).values()) > 30
        # events: the same rows, then the announcement; one job's too.
        after = await rows_of(conn, wf_a)
        assert after[:-1] == shown and after[-1]["type"] == "WorkflowArchived"
        assert await rows_of(conn, wf_a, 3) == shown_job
        # --as-of replays the archive in stream order with the log.
        assert (await as_of_query(conn, JOBS, (middle, None))).to_pylist() == then
        # sql: the read models lost nothing; they gained the archive's row.
        now = await tables(projector)
        assert [row["wf"] for row in now["archives"]] == [wf_a]
        assert {t: rows for t, rows in now.items() if t not in ("archives", "checkpoint")} == {
            t: rows for t, rows in before.items() if t not in ("archives", "checkpoint")
        } | {"events": now["events"]}
        assert [r for r in now["events"] if r["type"] != "WorkflowArchived"] == before["events"]
        # KV: the workflow's record stays, its jobs' go.
        assert await job_records(conn.js, wf_a) == []
        assert [s.wf for s in await workflow_records(conn.js, wf_a)] == [wf_a]
        assert len(await job_records(conn.js, wf_b)) == 8
        # Read-only from now on.
        with pytest.raises(ArchivedWorkflow):
            await restart_failed(conn, wf_a)
        tg.cancel_scope.cancel()

    # A rebuild, and a new projector catching up from nothing, fold the same tables.
    await catch_up(conn, tmp_path / "live.duckdb")  # what the worker wrote as it stopped
    await replay_into(conn, tmp_path / "rebuilt.duckdb")
    await catch_up(conn, tmp_path / "fresh.duckdb")
    live = dump(tmp_path / "live.duckdb")
    assert dump(tmp_path / "rebuilt.duckdb") == live
    assert dump(tmp_path / "fresh.duckdb") == live


async def test_retention_archives_by_itself_and_a_crash_before_the_purge_is_made_good(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await ensure_streams(conn.nc, conn.js, upgrade=lambda why: None)
    first, second = specs()
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, 5).run)
        await tg.start(Worker(conn, options(tmp_path)).run)
        wf_a = await submit_workflow(conn, first, workdir=str(tmp_path))
        wf_b = await submit_workflow(conn, second, workdir=str(tmp_path))
        with anyio.fail_after(60):
            for wf in (wf_a, wf_b):
                await wait_in_log(conn, wf)
        # A projector stopped between announcing A's archive and purging it:
        await announce(conn, wf_a, tmp_path, "projector")
        assert sum((await in_log(conn, wf_a)).values()) > 40
        shown = await rows_of(conn, wf_a)  # each event once, archived and in the log
        assert len({row["seq"] for row in shown}) == len(shown)
        running = await submit_workflow(conn, workflow(("long", "sleep 60", ())), workdir=".")
        with pytest.raises(NotArchivable, match="not finished"):
            await announce(conn, running, tmp_path, "projector")

        # The next projector purges A first, then archives B once it is a second old.
        projector = Projector(conn, tmp_path / "live.duckdb", retention_s=1.0)
        await tg.start(projector.run)
        with anyio.fail_after(30):
            while len(await in_log(conn, wf_a)) > 1 or await archive_of(conn, wf_b) is None:
                await anyio.sleep(0.2)
            await projector.caught_up(await conn.store.end())
        assert await rows_of(conn, wf_a) == shown
        assert await in_log(conn, wf_b) == {f"ev.{wf_b}.wf.WorkflowArchived": 1}
        archived = await projector.query("SELECT wf FROM archives ORDER BY seq")
        assert archived.column("wf").to_pylist() == [wf_a, wf_b]
        tg.cancel_scope.cancel()


async def test_a_projector_whose_last_event_was_archived_since_catches_up_without_rebuilding(
    conn: Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    await ensure_streams(conn.nc, conn.js, upgrade=lambda why: None)
    stale, live = tmp_path / "stale.duckdb", tmp_path / "live.duckdb"
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, 5).run)
        await tg.start(Worker(conn, options(tmp_path)).run)
        wf = await submit_workflow(conn, specs()[0], workdir=str(tmp_path))
        with anyio.fail_after(60):
            await wait_in_log(conn, wf)
        await catch_up(conn, stale)  # its last event: the workflow's WorkflowCompleted
        tg.cancel_scope.cancel()
    projector = Projector(conn, live)
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        await projector.archive(wf)  # purges the stale file's last event from the log
        tg.cancel_scope.cancel()
    await catch_up(conn, stale)
    await catch_up(conn, live)
    assert "rebuilding" not in caplog.text
    assert dump(stale) == dump(live)
