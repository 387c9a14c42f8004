"""kill -9 the scheduler (with its projector) mid-run: a restarted one finishes the
workflow from the log, and every job ran to a successful end exactly once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from jobstream.model import Resources
from jobstream.ops.submit import submit_workflow
from jobstream.projections.guard import QueryError
from jobstream.projections.kv import workflow_records
from jobstream.projections.query import remote_query
from jobstream.projections.service import replay_into
from jobstream.streams.connection import Connection
from jobstream.streams.subjects import EVENTS_STREAM
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

from ..integration.helpers import histories, types, workflow
from ..integration.processes import spawn, stop
from ..integration.test_read_models import dump


async def checkpoint(conn: Connection) -> int | None:
    """The projector's checkpoint, or None while the restarted one is not serving yet."""
    try:
        rows = (await remote_query(conn.nc, "select seq from checkpoint")).to_pylist()
    except QueryError:
        return None
    return int(rows[0]["seq"]) if rows else None


async def done(conn: Connection, wf: str) -> int:
    records = await workflow_records(conn.js, wf)
    return records[0].done() if records else 0


async def test_scheduler_killed_mid_run(
    conn: Connection, nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = workflow(
        *(
            (f"j{i}", f"echo {i} >> ran_{i}; sleep 0.05", ((i - 1,) if i % 20 else ()))
            for i in range(200)
        )
    )
    args = ("server", "--nats-url", nats_url, "--state-dir", str(tmp_path / "state"))
    scheduler = spawn(*args, cwd=tmp_path, log=tmp_path / "s1.log")
    options = WorkerOptions(
        capacity=Resources(num_cpus=2, memory_mib=2048), log_dir=tmp_path / "logs"
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(Worker(conn, options).run)
            wf = await submit_workflow(conn, spec, workdir=os.getcwd())
            with anyio.fail_after(60):
                while await done(conn, wf) < 50:
                    await anyio.sleep(0.05)
            assert await done(conn, wf) < 200  # mid-run
            os.kill(scheduler.pid, signal.SIGKILL)
            scheduler.wait()
            scheduler = spawn(*args, cwd=tmp_path, log=tmp_path / "s2.log")
            with anyio.fail_after(120):
                while (records := await workflow_records(conn.js, wf)) == [] or not records[
                    0
                ].finished:
                    await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
        found = await histories(conn, wf)
        last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq
        with anyio.fail_after(30):  # the restarted projector catches up with the log
            while await checkpoint(conn) != last:
                await anyio.sleep(0.1)
    finally:
        assert stop(scheduler) == 0
    live = dump(tmp_path / "state" / "jobstream.duckdb")
    await replay_into(conn, tmp_path / "rebuilt.duckdb")
    assert live == dump(tmp_path / "rebuilt.duckdb")  # read models equal a rebuild
    assert len(found) == 200
    for n, events in found.items():
        kinds = types(events)
        assert kinds.count("JobCompleted") == 1 and kinds[-1] == "JobCompleted", (n, kinds)
        assert kinds.count("JobStarted") == 1, (n, kinds)  # the command ran exactly once
        assert (tmp_path / f"ran_{n}").read_text() == f"{n}\n"
