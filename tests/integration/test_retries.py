"""Failure handlers end to end: exit codes 10/11/12 retried 3/2/3 times, 1 not retried."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobstream.config import Settings
from jobstream.events import JobRetryScheduled
from jobstream.host.local import run_local
from jobstream.model import Resources
from jobstream.spec import load_spec
from jobstream.streams.connection import open_connection
from jobstream.workers.context import WorkerOptions

from .helpers import histories, types

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "failure_handlers.yaml"


async def test_failure_handler_rules(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = load_spec(EXAMPLE)
    options = WorkerOptions(capacity=Resources(num_cpus=2, memory_mib=8192), log_dir=tmp_path / "l")
    outcome = await run_local(settings, spec, options)
    assert outcome.summary.counts["failed"] == 4 and outcome.summary.counts["completed"] == 1
    async with open_connection(settings.nats_url or "") as conn:
        found = await histories(conn, outcome.wf)
    names = {job.index: job.name for job in spec.jobs}
    attempts = {names[n]: types(events).count("JobClaimed") for n, events in found.items()}
    assert attempts == {"exit10": 4, "exit11": 3, "exit12": 4, "exit1": 1, "flaky": 3}
    final = {names[n]: types(events)[-1] for n, events in found.items()}
    assert final == {
        "exit10": "JobFailed", "exit11": "JobFailed", "exit12": "JobFailed",
        "exit1": "JobFailed", "flaky": "JobCompleted",
    }  # fmt: skip
    retries = [e for events in found.values() for e in events if isinstance(e, JobRetryScheduled)]
    assert sorted((names[e.job], e.rule, e.retry) for e in retries if names[e.job] == "exit11") == [
        ("exit11", 1, 1), ("exit11", 1, 2)
    ]  # fmt: skip
    recovered = [e.recovery_return_code for e in retries if names[e.job] != "exit11"]
    assert recovered and set(recovered) == {0}
    log = (tmp_path / "recovery.log").read_text().splitlines()
    assert len(log) == 3 + 3 + 2  # exit10, exit12, flaky's two retries
    assert "recovering exit10 after attempt 1" in log
