"""kill -9 the projector mid-run: after a restart its tables equal a rebuild from seq 1."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from jobstream.model import Resources
from jobstream.ops.submit import submit_workflow
from jobstream.projections.kv import workflow_records
from jobstream.projections.query import remote_query
from jobstream.projections.service import replay_into
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection
from jobstream.streams.subjects import EVENTS_STREAM
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

from ..integration.helpers import workflow
from ..integration.processes import spawn, stop
from ..integration.test_read_models import dump


async def progress(conn: Connection, wf: str) -> tuple[int, bool]:
    records = await workflow_records(conn.js, wf)
    return (records[0].done(), records[0].finished) if records else (0, False)


async def test_projector_killed_mid_run_resumes_exactly(
    conn: Connection, nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state"
    spec = workflow(*((f"j{i}", "sleep 0.02", ((i - 1,) if i % 10 else ())) for i in range(200)))
    options = WorkerOptions(
        capacity=Resources(num_cpus=2, memory_mib=2048), log_dir=tmp_path / "logs"
    )
    args = ("projector", "--nats-url", nats_url, "--state-dir", str(state))
    projector = spawn(*args, cwd=tmp_path, log=tmp_path / "projector1.log")
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(Scheduler(conn, 5).run)
            worker = Worker(conn, options)
            tg.start_soon(worker.run)
            wf = await submit_workflow(conn, spec, workdir=os.getcwd())
            with anyio.fail_after(60):
                while (await progress(conn, wf))[0] < 40:
                    await anyio.sleep(0.05)
            os.kill(projector.pid, signal.SIGKILL)  # mid-run, mid-batch perhaps
            projector.wait()
            done_at_kill = (await progress(conn, wf))[0]
            assert done_at_kill < 200
            projector = spawn(*args, cwd=tmp_path, log=tmp_path / "projector2.log")
            with anyio.fail_after(120):
                while not (await progress(conn, wf))[1]:
                    await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
        last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq
        with anyio.fail_after(30):
            while (await remote_query(conn.nc, "select seq from checkpoint")).to_pylist() != [
                {"seq": last}
            ]:
                await anyio.sleep(0.1)
    finally:
        assert stop(projector) == 0
    live = dump(state / "jobstream.duckdb")
    await replay_into(conn, tmp_path / "rebuilt.duckdb")
    assert live == dump(tmp_path / "rebuilt.duckdb")
    assert len({e["seq"] for e in live["events"]}) == len(live["events"]) == last
    assert {j["state"] for j in live["jobs"]} == {"completed"} and len(live["jobs"]) == 200
