"""A worker with little walltime left (the end of its Slurm allocation) never starts a job
whose runtime does not fit it; the job waits for a worker with time enough."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .processes import jobstream, spawn, stop, wait_for_server

SPEC = """\
name: walltime
resource_requirements:
  - {name: short, num_cpus: 1, memory: 100m, runtime: PT5S}
  - {name: long, num_cpus: 1, memory: 100m, runtime: PT1M}
jobs:
  - {name: "s{i}", command: "echo $JOBSTREAM_WORKER_ID > s{i}", parameters: {i: "0:3"},
     resource_requirements: short}
  - {name: long, command: "echo $JOBSTREAM_WORKER_ID > long", resource_requirements: long}
"""


def test_a_job_longer_than_the_time_left_waits_for_a_worker_with_time(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    server = spawn("server", cwd=tmp_path, log=tmp_path / "server.log")
    workers = []
    try:
        wait_for_server(tmp_path / ".jobstream", server)
        submitted = jobstream("submit", "spec.yaml", "--json", cwd=tmp_path)
        wf = json.loads(submitted.stdout)["workflow"]
        ending = ("--cpus", "2", "--memory", "1g", "--walltime", "00:30", "--idle-timeout", "3")
        began = time.monotonic()
        short_lived = jobstream("worker", *ending, cwd=tmp_path, timeout=60)
        assert short_lived.returncode == 0, short_lived.stderr
        # Its jobs take a second; idle for 3 s it stops. Regression: empty fetches (as
        # nats-py returns when a pull request expires) counted as work, and a worker
        # fetching two at a time could go on for a minute.
        assert time.monotonic() - began < 12
        first = {path.read_text() for path in tmp_path.glob("s?")}
        assert len(first) == 1 and not (tmp_path / "long").exists()
        status = json.loads(jobstream("status", wf, "--json", cwd=tmp_path).stdout)
        assert {k: n for k, n in status["counts"].items() if n} == {"completed": 4, "ready": 1}
        workers.append(
            spawn("worker", "--cpus", "2", "--memory", "1g", cwd=tmp_path, log=tmp_path / "w2.log")
        )
        watched = jobstream("watch", wf, "--json", cwd=tmp_path)
        assert watched.returncode == 0, watched.stdout
        assert (tmp_path / "long").read_text() not in first  # the worker with time ran it
        events = jobstream("events", wf, "long", "--json", cwd=tmp_path).stdout.splitlines()
        kinds = [json.loads(line)["type"] for line in events]
        assert kinds == ["JobSubmitted", "JobReady", "JobClaimed", "JobStarted", "JobCompleted"]
    finally:
        codes = [stop(p) for p in (*workers, server)]
    assert set(codes) == {0}
