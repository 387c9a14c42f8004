"""kill -9 a worker: the processes of its jobs end within a second or two, so a job taken
over by another worker never runs twice at once (before: they ran on, in their own
sessions, for as long as the command lasted)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio

from jobstream.model import JobDef, Resources, WorkflowDef
from jobstream.ops.submit import submit_workflow
from jobstream.streams.connection import open_connection

from ..integration.helpers import histories, types
from ..integration.processes import alive, spawn, stop, wait_for_server


async def test_a_killed_workers_jobs_and_their_children_end(tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = spawn("server", "--state-dir", str(state), cwd=tmp_path, log=tmp_path / "server.log")
    worker = None
    # The job's shell and a child of its own, both long-lived; each writes its pid.
    command = (
        "sleep 60 & echo $! > child_$JOBSTREAM_JOB_INDEX; echo $$ > job_$JOBSTREAM_JOB_INDEX; wait"
    )
    jobs = tuple(
        JobDef(
            index=n,
            name=f"long{n}",
            command=command,
            resources=Resources(num_cpus=1, memory_mib=100),
        )
        for n in range(2)
    )
    try:
        url = wait_for_server(state, server)
        worker = spawn("worker", "--cpus", "2", "--memory", "1g", "--state-dir", str(state),
                       cwd=tmp_path, log=tmp_path / "worker.log")  # fmt: skip
        async with open_connection(url) as conn:
            wf = await submit_workflow(
                conn, WorkflowDef(name="k", jobs=jobs), workdir=str(tmp_path)
            )
            with anyio.fail_after(30):
                while True:
                    found = await histories(conn, wf)
                    started = all("JobStarted" in types(found.get(n, [])) for n in range(2))
                    if started and all((tmp_path / f"child_{n}").exists() for n in range(2)):
                        break
                    await anyio.sleep(0.05)
            pids = [
                int((tmp_path / f"{kind}_{n}").read_text())
                for kind in ("job", "child")
                for n in range(2)
            ]
            assert all(alive(pid) for pid in pids)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            killed = time.monotonic()
            while any(alive(pid) for pid in pids) and time.monotonic() - killed < 10:
                await anyio.sleep(0.05)
            ended_after = time.monotonic() - killed
    finally:
        stop(server)
    assert not [pid for pid in pids if alive(pid)]
    assert ended_after < 3.0
