"""Two worker processes with different hardware against one `jobstream server`."""

from __future__ import annotations

import os
from pathlib import Path

import anyio

from jobstream.events import JobStarted, WorkerStarted
from jobstream.model import JobDef, Resources, WorkflowDef
from jobstream.ops.submit import submit_workflow
from jobstream.streams.connection import open_connection
from jobstream.streams.reader import read_until_caught_up
from jobstream.views.audit import wait_in_log

from .processes import spawn, stop, wait_for_server

CPU_JOB = Resources(num_cpus=1, memory_mib=100, runtime_s=60)
GPU_JOB = Resources(num_cpus=1, memory_mib=100, num_gpus=2, runtime_s=60)


def spec() -> WorkflowDef:
    record = 'echo "$JOBSTREAM_WORKER_ID ${CUDA_VISIBLE_DEVICES-none}" > out_$JOBSTREAM_JOB_INDEX'
    jobs = [
        JobDef(index=i, name=f"cpu{i}", command=f"{record}; sleep 0.2", resources=CPU_JOB)
        for i in range(6)
    ]
    jobs += [
        JobDef(index=6 + i, name=f"gpu{i}", command=record, resources=GPU_JOB) for i in range(2)
    ]
    return WorkflowDef(name="hw", jobs=tuple(jobs))


async def test_gpu_job_runs_only_on_the_worker_with_gpus(tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = spawn("server", "--state-dir", str(state), cwd=tmp_path, log=tmp_path / "server.log")
    workers = []
    try:
        url = wait_for_server(state, server)
        for name, gpus in (("cpu-only", "0"), ("gpu-node", "2")):
            workers.append(
                spawn(
                    "worker",
                    "--state-dir",  # its login, not a password on the command line
                    str(state),
                    "--cpus",
                    "2",
                    "--memory",
                    "1g",
                    "--gpus",
                    gpus,
                    "--log-dir",
                    str(tmp_path / name),
                    cwd=tmp_path,
                    log=tmp_path / f"{name}.log",
                )
            )
        async with open_connection(url) as conn:
            wf = await submit_workflow(conn, spec(), workdir=str(tmp_path))
            with anyio.fail_after(60):
                status = await wait_in_log(conn, wf)
            events = [s.event async for s in read_until_caught_up(conn.js)]
    finally:
        codes = [stop(p) for p in [*workers, server]]
    logs = {p.name: p.read_text()[-2000:] for p in tmp_path.glob("*.log")}
    assert status.succeeded(), (status.summary(), logs)
    assert codes == [0, 0, 0], logs
    gpu_workers = {
        e.worker for e in events if isinstance(e, WorkerStarted) and e.capacity.num_gpus == 2
    }
    cpu_workers = {
        e.worker for e in events if isinstance(e, WorkerStarted) and e.capacity.num_gpus == 0
    }
    assert len(gpu_workers) == 1 and len(cpu_workers) == 1
    started = {e.job: e for e in events if isinstance(e, JobStarted)}
    for n in (6, 7):
        assert started[n].worker in gpu_workers
        assert started[n].gpu_ids == (0, 1)
        worker_id, devices = (tmp_path / f"out_{n}").read_text().split()
        assert worker_id in gpu_workers and devices == "0,1"
    assert {started[n].worker for n in range(6)} <= gpu_workers | cpu_workers
    assert os.path.exists(tmp_path / "out_0")
