"""kill -9 a worker mid-job: another worker takes the job over after the lease; the dead
attempt is recorded as lost, and its late completion could never be accepted."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import pytest

from jobstream.events import JobStarted, WorkerLost, WorkerStarted
from jobstream.model import JobDef, Resources, WorkflowDef
from jobstream.ops.submit import submit_workflow
from jobstream.streams.connection import open_connection
from jobstream.streams.reader import read_until_caught_up
from jobstream.streams.subjects import workers_filter
from jobstream.views.audit import wait_in_log

from ..integration.helpers import histories, types
from ..integration.processes import spawn, stop, wait_for_server

LEASE_S = 2.0


async def test_killed_worker_job_is_taken_over_within_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBSTREAM_LEASE_S", str(LEASE_S))
    state = tmp_path / "state"
    server = spawn("server", "--state-dir", str(state), cwd=tmp_path, log=tmp_path / "server.log")
    worker_args = ("worker", "--cpus", "1", "--memory", "1g", "--state-dir", str(state))
    first = second = None
    job = JobDef(
        index=0, name="long", command="sleep 4; echo $JOBSTREAM_WORKER_ID > done_$JOBSTREAM_ATTEMPT",
        resources=Resources(num_cpus=1, memory_mib=100, runtime_s=60),
    )  # fmt: skip
    try:
        url = wait_for_server(state, server)
        first = spawn(*worker_args, cwd=tmp_path, log=tmp_path / "w1.log")
        async with open_connection(url) as conn:
            wf = await submit_workflow(
                conn, WorkflowDef(name="k", jobs=(job,)), workdir=str(tmp_path)
            )
            with anyio.fail_after(30):
                while "JobStarted" not in types((await histories(conn, wf)).get(0, [])):
                    await anyio.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
            killed_at = time.time()
            first.wait()
            second = spawn(*worker_args, cwd=tmp_path, log=tmp_path / "w2.log")
            with anyio.fail_after(60):
                status = await wait_in_log(conn, wf)
            history = (await histories(conn, wf))[0]
            lifecycle = [s.event async for s in read_until_caught_up(conn.js, workers_filter())]
            workers = [e for e in lifecycle if isinstance(e, WorkerStarted)]
            losses = [e for e in lifecycle if isinstance(e, WorkerLost)]
    finally:
        codes = [stop(p) for p in (second, server) if p is not None]
    assert status.succeeded()
    assert codes == [0, 0]
    assert types(history) == [
        "JobSubmitted", "JobReady", "JobClaimed", "JobStarted",
        "JobLost", "JobClaimed", "JobStarted", "JobCompleted",
    ]  # fmt: skip
    dead, alive = workers[0].worker, workers[1].worker
    lost, reclaimed = history[4], history[5]
    assert lost.worker == dead and lost.attempt == 1  # type: ignore[union-attr]
    assert reclaimed.worker == alive and reclaimed.attempt == 2  # type: ignore[union-attr]
    assert reclaimed.at - killed_at <= LEASE_S + 5
    started = [e for e in history if isinstance(e, JobStarted)]
    assert [e.worker for e in started] == [dead, alive]
    assert (tmp_path / "done_2").read_text().strip() == alive
    assert [(e.worker, e.reason) for e in losses] == [(dead, "lease expired")]
