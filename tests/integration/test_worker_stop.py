"""A worker stopped with SIGTERM (end of a Slurm allocation) terminates its running job
and records JobTerminated; the job is dispatched again at once and finishes elsewhere."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .processes import jobstream, spawn, stop, wait_for_server


def test_sigterm_terminates_and_requeues(tmp_path: Path) -> None:
    spec = tmp_path / "slow.yaml"
    spec.write_text(  # the first attempt would run long; the second is quick
        "name: slow\njobs:\n  - name: slow\n"
        "    command: echo run >> runs; [ $JOBSTREAM_ATTEMPT -gt 1 ] || sleep 30\n"
    )
    server = spawn("server", cwd=tmp_path, log=tmp_path / "server.log")
    second = None
    try:
        wait_for_server(tmp_path / ".jobstream", server)
        first = spawn(
            "worker", "--cpus", "1", "--memory", "1g", cwd=tmp_path, log=tmp_path / "w1.log"
        )
        wf = json.loads(jobstream("submit", str(spec), "--json", cwd=tmp_path).stdout)["workflow"]
        deadline = time.monotonic() + 30
        while "JobStarted" not in jobstream("events", wf, "slow", "--json", cwd=tmp_path).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert stop(first) == 0
        second = spawn(
            "worker", "--cpus", "1", "--memory", "1g", cwd=tmp_path, log=tmp_path / "w2.log"
        )
        watched = jobstream("watch", wf, "--json", cwd=tmp_path)
        assert watched.returncode == 0, watched.stdout
        lines = jobstream("events", wf, "slow", "--json", cwd=tmp_path).stdout.splitlines()
    finally:
        codes = [stop(p) for p in (second, server) if p is not None]
    assert codes == [0, 0]
    kinds = [json.loads(line)["type"] for line in lines]
    assert kinds == [
        "JobSubmitted", "JobReady", "JobClaimed", "JobStarted", "JobTerminated",
        "JobReady", "JobClaimed", "JobStarted", "JobCompleted",
    ]  # fmt: skip
    terminated = json.loads(lines[4])["payload"]
    assert terminated["attempt"] == 1 and "stopping" in terminated["reason"]
    assert (tmp_path / "runs").read_text().splitlines() == ["run", "run"]
