"""Drive jobstream through a workload as users deploy it: ``jobstream server`` (embedded
nats-server, scheduler, projector) and one ``jobstream worker`` offering the workload's
cores, each its own process; the spec is submitted and awaited from this process.

Wall time runs from just before the spec is loaded (validation and expansion count) to the
WorkflowCompleted event; peak RSS covers server, nats-server, worker and this process.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import psutil

from benchmarks.peers import PeerResult, measure
from benchmarks.workload import Workload, dag, noop
from jobstream.config import Settings
from jobstream.events import WorkflowCompleted
from jobstream.gateway.client import submitter_session
from jobstream.host import statedir
from jobstream.host.connect import logged_in, tls_of
from jobstream.host.loop import run_async
from jobstream.model import WorkflowDef
from jobstream.ops.submit import submit_workflow
from jobstream.spec import load_spec
from jobstream.streams.connection import Connection, open_connection
from jobstream.streams.reader import read_batches
from jobstream.streams.subjects import worker_subjects, workflow_subjects
from jobstream.streams.urls import public

CLI = [sys.executable, "-m", "jobstream"]
# e.g. BENCH_WORKER_PREFIX="-m cProfile -o worker.prof" to profile the worker
WORKER_CLI = [sys.executable, *os.environ.get("BENCH_WORKER_PREFIX", "").split(), "-m", "jobstream"]
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 1200.0  # a stuck run fails (and stops its processes) instead of hanging


def spec_for(workload: Workload) -> dict[str, object]:
    """The workload as a jobstream spec: one job per graph node, 1 CPU each."""
    jobs: list[dict[str, object]] = []
    for name, deps in workload.graph():
        job: dict[str, object] = {
            "name": name,
            "command": workload.command,
            "resource_requirements": "one",
        }
        if deps:
            job["depends_on"] = deps
        jobs.append(job)
    return {
        "name": f"bench-{workload.name}",
        "jobs": jobs,
        "resource_requirements": [
            {"name": "one", "num_cpus": 1, "memory": "10m", "runtime": "PT1H"}
        ],
    }


def _wait_for_server(state: Path, process: subprocess.Popen[bytes]) -> str:
    """The server's URL with its login (the benchmark's worker and client use it)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jobstream server exited with {process.returncode}")
        found = statedir.discover(state)
        if found is not None:
            return logged_in(found.url, Settings(state_dir=state))
        time.sleep(0.05)
    raise TimeoutError(f"jobstream server did not start within {START_TIMEOUT_S:.0f} s")


class Observer:
    """How this process reaches the server: as its admin (waiting, following) and, in a
    secure run, as a submitter (submitting through the submitter service)."""

    def __init__(self, url: str, state: Path, submitter: Path | None) -> None:
        self.url = url
        self.tls = tls_of(Settings(state_dir=state))
        self.submitter = submitter

    def admin(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return open_connection(self.url, tls=self.tls)

    async def submit(self, conn: Connection, workflow: WorkflowDef, workdir: Path) -> str:
        if self.submitter is None:
            return await submit_workflow(conn, workflow, workdir=str(workdir))
        settings = Settings(state_dir=Path("/nonexistent"), creds=self.submitter)
        async with submitter_session(logged_in(public(self.url), settings), tls=self.tls) as me:
            return await me.submit(workflow, str(workdir))


async def _wait_for_worker(observer: Observer) -> None:
    async with observer.admin() as conn:
        with anyio.fail_after(START_TIMEOUT_S):
            async for batch in read_batches(conn.js, worker_subjects("*"), poll_s=0.1):
                if batch.events:
                    return


async def _submit_and_wait(observer: Observer, spec: Path, workdir: Path) -> dict[str, int]:
    with anyio.fail_after(RUN_TIMEOUT_S):
        return await _submit_and_follow(observer, spec, workdir)


async def _submit_and_follow(observer: Observer, spec: Path, workdir: Path) -> dict[str, int]:
    async with observer.admin() as conn:
        workflow = load_spec(spec)
        wf = await observer.submit(conn, workflow, workdir)
        async for batch in read_batches(conn.js, workflow_subjects(wf), poll_s=0.1):
            for stored in batch.events:
                if isinstance(stored.event, WorkflowCompleted):
                    return dict(stored.event.counts)
    raise RuntimeError("the event stream ended before the workflow completed")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(workload: Workload, workers: int = 2, secure: str = "") -> PeerResult:
    """``secure``: as a site with several people would run it: the worker with a compute
    identity, the workflow submitted by a submitter (through the service), and (unless
    ``roles``) TLS."""
    with tempfile.TemporaryDirectory(prefix="jobstream-bench-") as tmp:
        root = Path(tmp)
        spec = root / "spec.json"
        spec.write_text(json.dumps(spec_for(workload)))
        state = root / "state"
        common = ["--state-dir", str(state)]
        logs = Path(os.environ.get("BENCH_LOG_DIR", root))
        with open(logs / "server.log", "wb") as log:
            server = subprocess.Popen(
                [*CLI, "server", *common, *(["--tls"] if secure not in ("", "roles") else [])],
                cwd=root, stdout=log, stderr=log,
            )  # fmt: skip
        worker: subprocess.Popen[bytes] | None = None
        try:
            url = _wait_for_server(state, server)
            login: list[str] = []
            submitter = None
            if secure:
                login = ["--creds", str(_user(state, "bench-node", "compute"))]
                submitter = _user(state, "bench-user", "submitter")
            with open(logs / "worker.log", "wb") as log:
                worker = subprocess.Popen(
                    [*WORKER_CLI, *login, "worker", "--cpus", str(workers), "--memory", "4g",
                     *common],
                    cwd=root, stdout=log, stderr=log,
                )  # fmt: skip
            observer = Observer(url, state, submitter)
            run_async(_wait_for_worker, observer)
            counts: dict[str, int] = {}
            roots = {"server": server.pid, "worker": worker.pid}
            before = cpu_seconds(roots)
            seconds, peak_mib = measure(
                lambda: counts.update(run_async(_submit_and_wait, observer, spec, root)),
                others=list(roots.values()),
            )
            cpu = {name: s - before.get(name, 0.0) for name, s in cpu_seconds(roots).items()}
        finally:
            for process in (worker, server):
                if process is not None:
                    _stop(process)
        if counts.get("completed") != workload.jobs:
            raise RuntimeError(f"not every job completed: {counts}")
        note = "CPU during the run: " + ", ".join(f"{name} {s:.1f}s" for name, s in cpu.items())
        return PeerResult("jobstream", workload.jobs, seconds, peak_mib, note, sum(cpu.values()))


def _user(state: Path, name: str, role: str) -> Path:
    """A user of the running server; its credentials file."""
    creds = state / "creds" / f"{name}.json"
    add = ["users", "add", name, "--role", role, "--out", str(creds), "--state-dir", str(state)]
    subprocess.run([*CLI, *add], check=True, capture_output=True)
    return creds


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and its long-lived children (summed by
    their own names: nats-server), not counting the jobs they ran and reaped."""
    used: dict[str, float] = {}
    for name, pid in roots.items():
        try:
            proc = psutil.Process(pid)
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        for member in family:
            try:
                label = name if member is proc else member.name()
                times = member.cpu_times()
            except psutil.Error:  # ended meanwhile
                continue
            used[label] = used.get(label, 0.0) + times.user + times.system
    return used


def main() -> int:
    """``python -m benchmarks.jobstream_engine <noop|dag> --jobs N``: one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.jobstream_engine")
    parser.add_argument("workload", choices=["noop", "dag"])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--layers", type=int, default=10, help="dag stages")
    parser.add_argument("--workers", type=int, default=2, help="job slots (cores)")
    parser.add_argument(
        "--secure",
        choices=["", "roles", "tls"],
        default=os.environ.get("BENCH_SECURE", ""),
        help="roles: a compute worker and a submitter's submission; tls: that and TLS "
        "(also BENCH_SECURE=…, e.g. for `benchmarks.pairs --after-env BENCH_SECURE=tls`)",
    )
    args = parser.parse_args()
    workload = dag(args.jobs, args.layers) if args.workload == "dag" else noop(args.jobs)
    try:
        result = run(workload, workers=args.workers, secure=args.secure)
    except Exception as error:
        print(f"jobstream: {type(error).__name__}: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    print(json.dumps(dataclasses.asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
