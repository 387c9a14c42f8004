"""Read models against a real server: SQL = KV status = the log; the Python client."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from jobstream import Client
from jobstream.config import Settings
from jobstream.host.local import run_local
from jobstream.model import Resources
from jobstream.ops.rebuild import rebuild_models
from jobstream.ops.submit import submit_workflow
from jobstream.projections.duck import TABLES, DuckStore
from jobstream.projections.kv import (
    job_records,
    workflow_records,
)
from jobstream.projections.records import JobRecord, WorkflowStatus
from jobstream.projections.service import Projector, replay_into
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection, open_connection
from jobstream.streams.subjects import EVENTS_STREAM, JOBS_BUCKET
from jobstream.views.audit import wait_in_log
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

from .helpers import workflow


def options(tmp_path: Path) -> WorkerOptions:
    return WorkerOptions(capacity=Resources(num_cpus=2, memory_mib=2048), log_dir=tmp_path / "logs")


def dump(path: Path) -> dict[str, list[dict[str, object]]]:
    store = DuckStore(path, read_only=True)
    try:
        return {t: store.query(f"SELECT * FROM {t} ORDER BY ALL").to_pylist() for t in TABLES}
    finally:
        store.close()


async def test_sql_kv_and_log_agree(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = workflow(
        *((f"p{i}", "true" if i % 7 else "exit 2", ()) for i in range(30)),
        ("sink", "true", tuple(range(30))),
    )
    outcome = await run_local(settings, spec, options(tmp_path))
    async with Client(settings.nats_url, state_dir=settings.state_dir) as client:
        rows = await client.sql(
            f"select state, count(*) as n from jobs where wf = '{outcome.wf}' group by 1"
        )
        sql_counts = {r["state"]: r["n"] for r in rows}
        (summary,) = await client.status(outcome.wf)
        log_status = await wait_in_log(client.conn, outcome.wf)
        records = await job_records(client.conn.js, outcome.wf)
        history = await client.events(outcome.wf, 0)
    kv_counts = {k: v for k, v in summary.counts.items() if v}
    log_counts = {k: v for k, v in log_status.counts().items() if v}
    assert sql_counts == kv_counts == log_counts == {"completed": 25, "failed": 5, "canceled": 1}
    assert {r.job: r.state for r in records} == {
        n: j.state.value for n, j in log_status.jobs.items() if j.state
    }
    assert [type(s.event).__name__ for s in history] == [
        "JobSubmitted",
        "JobReady",
        "JobClaimed",
        "JobStarted",
        "JobFailed",
    ]
    assert [s.event.actor for s in history][1:3] == ["scheduler", history[2].event.worker]


async def test_views_answer(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = workflow(("ok", "sleep 0.1", ()), ("bad", "echo oops >&2; exit 4", ()))
    await run_local(settings, spec, options(tmp_path))
    async with Client(settings.nats_url, state_dir=settings.state_dir) as client:
        failed = await client.sql("select name, return_code, stderr_tail from failed_jobs")
        pct = await client.sql("select * from runtime_percentiles")
        util = await client.sql("select * from worker_utilization")
        counts = await client.sql("select * from state_counts")
    assert failed == [{"name": "bad", "return_code": 4, "stderr_tail": "oops"}]
    assert pct[0]["attempts"] == 1 and pct[0]["p50_s"] >= 0.1
    assert util and 0 < max(r["cpu_utilization"] for r in util) <= 1
    assert {r["state"]: r["jobs"] for r in counts} == {"completed": 1, "failed": 1}


async def test_client_watch_yields_changes_until_finished(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = workflow(("a", "true", ()), ("b", "true", (0,)))
    async with open_connection(settings.nats_url or "") as conn, anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, 5).run)
        await tg.start(Projector(conn, tmp_path / "p.duckdb").run)
        await tg.start(Worker(conn, options(tmp_path)).run)
        async with Client(settings.nats_url, state_dir=tmp_path) as client:
            wf = await client.submit(spec, workdir=os.getcwd())
            seen: list[JobRecord | WorkflowStatus] = []
            with anyio.fail_after(30):
                async for change in client.watch(wf):
                    seen.append(change)
        tg.cancel_scope.cancel()
    assert isinstance(seen[-1], WorkflowStatus) and seen[-1].finished
    assert {(c.job, c.state) for c in seen if isinstance(c, JobRecord)} >= {
        (0, "completed"),
        (1, "completed"),
    }


async def test_rebuild_equals_live_tables(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = workflow(*((f"j{i}", "true", (i - 1,) if i else ()) for i in range(10)))
    await run_local(settings, spec, options(tmp_path))
    live = tmp_path / "state" / "jobstream.duckdb"
    async with open_connection(settings.nats_url or "") as conn:
        await catch_up(conn, live)  # events written after run's projector stopped
        events = await replay_into(conn, tmp_path / "rebuilt.duckdb")
    assert events > 50
    assert dump(live) == dump(tmp_path / "rebuilt.duckdb")


async def catch_up(conn: Connection, path: Path) -> None:
    """Run a projector on ``path`` until it has applied everything in the log."""
    last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq
    projector = Projector(conn, path)
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        with anyio.fail_after(30):
            await projector.caught_up(last)  # in DuckDB and in KV
        tg.cancel_scope.cancel()


async def test_kv_records_lost_after_a_commit_are_written_at_start(
    conn: Connection, tmp_path: Path
) -> None:
    """A projector killed after committing a batch but before its KV records were
    stored: the KV checkpoint stayed behind, and the next start rewrites them."""
    wf = await submit_workflow(
        conn, workflow(*((f"j{i}", "true", ()) for i in range(40))), workdir="."
    )
    path = tmp_path / "p.duckdb"
    await catch_up(conn, path)
    assert len(await job_records(conn.js, wf)) == 40
    await conn.js.delete_key_value(JOBS_BUCKET)  # the records never got stored ...
    store = DuckStore(path)
    store.set_kv_checkpoint(0)  # ... and the KV checkpoint did not move past them
    store.close()
    await catch_up(conn, path)
    records = await job_records(conn.js, wf)
    assert [(r.job, r.state) for r in records] == [(i, "submitted") for i in range(40)]
    (summary,) = await workflow_records(conn.js, wf)
    assert summary.counts == {"submitted": 40}
    store = DuckStore(path, read_only=True)
    assert store.kv_checkpoint() == store.checkpoint()
    store.close()


async def test_rebuild_writes_kv_for_events_the_live_projector_had_not_applied(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projector = Projector(conn, tmp_path / "p.duckdb")
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)

        async def stand_still(batch: object) -> None:
            """The live loop falls behind: it applies nothing from here on."""

        monkeypatch.setattr(projector, "project", stand_still)
        wf = await submit_workflow(
            conn, workflow(("a", "true", ()), ("b", "true", ())), workdir="."
        )
        last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq
        result = await projector.rebuild()
        assert projector.checkpoint == last and result["events"] == last
        tg.cancel_scope.cancel()
    assert [(r.job, r.state) for r in await job_records(conn.js, wf)] == [
        (0, "submitted"),
        (1, "submitted"),
    ]


async def test_offline_rebuild_leaves_kv_records_for_the_next_projector(
    conn: Connection, settings: Settings
) -> None:
    """`jobstream rebuild` without a running projector: the fresh file reaches further
    than the old one, and the projector started next writes KV for the difference."""
    path = settings.state_dir / "jobstream.duckdb"
    first = await submit_workflow(conn, workflow(("a", "true", ())), workdir=".")
    await catch_up(conn, path)
    second = await submit_workflow(conn, workflow(("b", "true", ())), workdir=".")
    result = await rebuild_models(conn, settings)
    assert result["path"] == str(path.resolve())
    assert await job_records(conn.js, second) == []  # no projector ran meanwhile
    await catch_up(conn, path)
    for wf in (first, second):
        assert [(r.job, r.state) for r in await job_records(conn.js, wf)] == [(0, "submitted")]
