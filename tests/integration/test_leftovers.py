"""What an interrupted run leaves is said, not silently run (issue 21, defect 9): a new
`jobstream run` in the same directory names the unfinished workflows and what to do, and
runs them only with --resume; `restart --failed` with no server says nothing runs them.
Before: the second run finished the first one's jobs too, without a word."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from .processes import jobstream, spawn

SLOW = (
    "name: slow\njobs:\n  - name: nap{i}\n    command: sleep 1\n    parameters:\n      i: '1:4'\n"
)
QUICK = "name: quick\njobs:\n  - name: a\n    command: echo hi\n"
FAILING = "name: failing\njobs:\n  - name: bad\n    command: exit 3\n"


def test_an_interrupted_runs_workflow_is_named_and_run_only_with_resume(tmp_path: Path) -> None:
    (tmp_path / "slow.yaml").write_text(SLOW)
    (tmp_path / "quick.yaml").write_text(QUICK)
    first = spawn("run", "slow.yaml", "--cpus", "1", cwd=tmp_path, log=tmp_path / "first.log")
    deadline = time.monotonic() + 30
    while "jobs submitted" not in (tmp_path / "first.log").read_text():
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    time.sleep(1.5)  # a job or two in
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=30) == 130
    refused = jobstream("run", "quick.yaml", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "1 workflow (slow " in refused.stderr and "jobs left) left unfinished" in refused.stderr
    assert "jobstream run --resume SPEC" in refused.stderr and "jobstream cancel" in refused.stderr
    assert "Traceback" not in refused.stderr
    resumed = jobstream("run", "quick.yaml", "--resume", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "also running what earlier runs left unfinished: 1 workflow (slow" in resumed.stderr
    assert json.loads(resumed.stdout)["succeeded"]
    status = json.loads(jobstream("status", "--json", cwd=tmp_path).stdout)
    assert {s["name"]: s["finished"] for s in status} == {"slow": True, "quick": True}


def test_restart_without_a_server_says_nothing_runs_the_jobs(tmp_path: Path) -> None:
    (tmp_path / "failing.yaml").write_text(FAILING)
    run = jobstream("run", "failing.yaml", "--json", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    wf = json.loads(run.stdout)["workflow"]
    restarted = jobstream("restart", wf, "--failed", cwd=tmp_path)
    assert restarted.returncode == 0, restarted.stderr
    assert "1 job(s) restarted" in restarted.stdout
    assert "no jobstream server answers here: nothing runs them" in restarted.stderr
