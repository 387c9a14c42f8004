"""A worker stopped with SIGTERM (end of a Slurm allocation) terminates its running jobs
and records JobTerminated; the jobs are dispatched again at once and finish elsewhere."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from .processes import jobstream, spawn, stop, wait_for_server


def stopped_midway(
    tmp_path: Path, spec: str, cpus: int, until: Callable[[str], bool]
) -> list[dict[str, object]]:
    """Run ``spec`` on a worker until ``until(wf)``, SIGTERM that worker, let a second one
    finish the workflow; the workflow's events, as ``jobstream events --json`` prints them."""
    path = tmp_path / "spec.yaml"
    path.write_text(spec)
    worker = ("worker", "--cpus", str(cpus), "--memory", "1g")
    server = spawn("server", cwd=tmp_path, log=tmp_path / "server.log")
    second = None
    try:
        wait_for_server(tmp_path / ".jobstream", server)
        first = spawn(*worker, cwd=tmp_path, log=tmp_path / "w1.log")
        wf = json.loads(jobstream("submit", str(path), "--json", cwd=tmp_path).stdout)["workflow"]
        deadline = time.monotonic() + 30
        while not until(wf):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        began = time.monotonic()
        assert stop(first) == 0
        assert time.monotonic() - began < 10  # nothing waited out a timeout
        second = spawn(*worker, cwd=tmp_path, log=tmp_path / "w2.log")
        watched = jobstream("watch", wf, "--json", cwd=tmp_path)
        assert watched.returncode == 0, watched.stdout
        lines = jobstream("events", wf, "--json", cwd=tmp_path).stdout.splitlines()
    finally:
        codes = [stop(p) for p in (second, server) if p is not None]
    assert codes == [0, 0]
    return [json.loads(line) for line in lines]


def test_sigterm_terminates_and_requeues(tmp_path: Path) -> None:
    spec = (  # the first attempt would run long; the second is quick
        "name: slow\njobs:\n  - name: slow\n"
        "    command: echo run >> runs; [ $JOBSTREAM_ATTEMPT -gt 1 ] || sleep 30\n"
    )

    def started(wf: str) -> bool:
        return "JobStarted" in jobstream("events", wf, "slow", "--json", cwd=tmp_path).stdout

    events = [e for e in stopped_midway(tmp_path, spec, 1, started) if ".job." in str(e["subject"])]
    assert [e["type"] for e in events] == [
        "JobSubmitted", "JobReady", "JobClaimed", "JobStarted", "JobTerminated",
        "JobReady", "JobClaimed", "JobStarted", "JobCompleted",
    ]  # fmt: skip
    terminated = events[4]["payload"]
    assert isinstance(terminated, dict)
    assert terminated["attempt"] == 1 and "stopping" in terminated["reason"]
    assert (tmp_path / "runs").read_text().splitlines() == ["run", "run"]


def test_sigterm_with_claimed_jobs_queued_for_room_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    """Short jobs: the worker holds claimed jobs queued for its two slots when it is told
    to stop. Running ones are terminated, queued ones handed back, and every job still
    completes exactly once, on the next worker."""
    jobs = 40
    spec = (
        "name: short\njobs:\n  - name: j{i}\n    command: echo {i} >> runs; sleep 0.2\n"
        f"    parameters:\n      i: '0:{jobs - 1}'\n"
    )
    # Once 8 have run the pace is known, and claims are made ahead of the slots.
    events = stopped_midway(tmp_path, spec, 2, lambda wf: len(_runs(tmp_path)) >= 8)
    completed = sorted(_job(e) for e in events if e["type"] == "JobCompleted")
    assert completed == list(range(jobs))  # each exactly once
    terminated = [e for e in events if e["type"] == "JobTerminated"]
    assert terminated, "the stop came while jobs were held"
    runs = _runs(tmp_path)
    assert sorted(set(runs)) == list(range(jobs))
    assert len(runs) - jobs <= len(terminated)  # only a terminated attempt ran twice


def _runs(tmp_path: Path) -> list[int]:
    path = tmp_path / "runs"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _job(event: dict[str, object]) -> int:
    return int(str(event["subject"]).split(".")[3])  # ev.<wf>.job.<n>.<kind>
