"""HyperQueue: every job a program task (``bash -c command``) in one HQ job, deps as task deps.

The wheel ships no ``hq`` binary, only an FFI whose ``LocalCluster`` runs the server and its
workers as threads of this process. There is one worker owning all ``workers`` cores, as HQ
is deployed (one worker per node; a task takes one core by default). The client runs in a
spawned process, as ``hq submit`` would: the FFI's wait holds the GIL, which would starve the
RSS sampler if it ran here.

The FFI's wait polls job status once a second, so "the client saw it finish" overstates the
time by up to 1 s. Tasks write stdout/stderr files (HQ's default, like jobstream's per-job
logs), created as each task starts; the end of the run is taken as the newest of them, i.e.
the start of the last task (a ``true`` runs for a few ms).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from multiprocessing.connection import Connection
from unittest import mock

from hyperqueue import Client, Job
from hyperqueue.cluster import LocalCluster, WorkerConfig
from hyperqueue.task.program import ExternalProgram

from benchmarks.peers import STARTUP_TIMEOUT_S, PeerResult, measure
from benchmarks.workload import Workload


def run(workload: Workload, workers: int = 2) -> PeerResult:
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="hq-peer-") as tmp,
        mock.patch.dict(os.environ, TMPDIR=tmp),  # LocalCluster leaves a socket in TMPDIR
    ):
        server_dir, task_dir = os.path.join(tmp, "server"), os.path.join(tmp, "tasks")
        os.mkdir(task_dir)
        cluster = LocalCluster(server_dir=server_dir)  # type: ignore[arg-type]  # FFI wants str
        try:
            cluster.start_worker(WorkerConfig(cores=workers))
            context = multiprocessing.get_context("spawn")
            conn, child_conn = context.Pipe()
            client = context.Process(
                target=_client, args=(child_conn, server_dir, workload, task_dir), daemon=True
            )
            client.start()
            try:
                _reply(conn, STARTUP_TIMEOUT_S)  # connected, and the worker ran a task
                startup = time.perf_counter() - started
                timing: list[float] = []

                def submit_and_wait() -> None:
                    conn.send("go")
                    timing.extend(_reply(conn, None))

                _, peak_mib = measure(submit_and_wait)
            finally:
                client.kill()
                client.join()
        finally:
            cluster.stop()
    seconds, seen = timing
    note = f"start-up {startup:.1f} s; client saw completion at {seen:.2f} s"
    return PeerResult("hyperqueue", workload.jobs, seconds, peak_mib, note)


def _reply(conn: Connection, timeout: float | None) -> list[float]:
    """The client's next message: timings when done, or an error message to raise."""
    if not conn.poll(timeout):
        raise TimeoutError(f"HyperQueue client silent for {timeout} s")
    message: list[float] | str = conn.recv()
    if isinstance(message, str):
        raise RuntimeError(message)
    return message


def _client(conn: Connection, server_dir: str, workload: Workload, task_dir: str) -> None:
    """Client process: warm up, then on "go" submit the workload, wait, send
    [seconds to the last task's start, seconds until the client saw the job finish]."""
    try:
        client = Client(server_dir)
        warm_up = Job()
        warm_up.program(["true"], stdout=None, stderr=None)
        client.wait_for_jobs([client.submit(warm_up)])
        conn.send([])
        conn.recv()
        start = time.time()  # wall clock, comparable with file times
        job = Job(default_workdir=task_dir)
        tasks: dict[str, ExternalProgram] = {}
        for name, deps in workload.graph():
            tasks[name] = job.program(
                ["bash", "-c", workload.command], deps=[tasks[dep] for dep in deps], name=name
            )
        client.wait_for_jobs([client.submit(job)])  # raises if any task failed
        seen = time.time() - start
        last_start = max(entry.stat().st_mtime for entry in os.scandir(task_dir))
        conn.send([last_start - start, seen])
    except Exception as error:
        conn.send(f"{type(error).__name__}: {error}")
