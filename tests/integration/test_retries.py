"""Failure handlers end to end: exit codes 10/11/12 retried 3/2/3 times, 1 not retried."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from jobstream.config import Settings
from jobstream.events import JobReady, JobRetryScheduled
from jobstream.host.local import run_local
from jobstream.model import Resources
from jobstream.ops.submit import submit_workflow
from jobstream.scheduler.service import Scheduler
from jobstream.spec import load_spec, parse_spec
from jobstream.streams.connection import Connection, open_connection
from jobstream.views.audit import wait_in_log
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

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


BACKING_OFF = """
name: backing_off
failure_handlers:
  - name: patient
    rules:
      - exit_codes: [10]
        max_retries: 3
        retry_delay: 1
        retry_backoff: 2
jobs:
  - name: flaky
    command: '[ "$JOBSTREAM_ATTEMPT" -ge 3 ] || exit 10'
    failure_handler: patient
"""


async def test_retries_wait_their_delay_even_across_a_scheduler_restart(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retry 1 waits 1 s, retry 2 waits 2 s; a scheduler that dies during the second
    delay is replaced by one that waits for the rest of it, not more, not less."""
    monkeypatch.chdir(tmp_path)
    spec = parse_spec(BACKING_OFF, "backing_off.yaml", "yaml")
    wf = await submit_workflow(conn, spec, workdir=os.getcwd())
    options = WorkerOptions(capacity=Resources(num_cpus=1, memory_mib=1024), log_dir=tmp_path / "l")

    async def retries_scheduled(count: int) -> None:
        with anyio.fail_after(30):
            while types((await histories(conn, wf)).get(0, [])).count("JobRetryScheduled") < count:
                await anyio.sleep(0.05)

    async with anyio.create_task_group() as workers:
        workers.start_soon(Worker(conn, options).run)
        async with anyio.create_task_group() as first:
            await first.start(Scheduler(conn, lease_s=5).run)
            await retries_scheduled(2)
            first.cancel_scope.cancel()  # the scheduler dies during the second delay
        await workers.start(Scheduler(conn, lease_s=5).run)
        with anyio.fail_after(30):
            await wait_in_log(conn, wf)
        workers.cancel_scope.cancel()
    (events,) = (await histories(conn, wf)).values()
    retries = [e for e in events if isinstance(e, JobRetryScheduled)]
    assert [round(e.retry_at - e.at, 3) for e in retries] == [1.0, 2.0]
    readies = [e.at for e in events if isinstance(e, JobReady)][1:]
    for retry, ready in zip(retries, readies, strict=True):
        assert retry.retry_at <= ready < retry.retry_at + 1.0
    assert types(events)[-1] == "JobCompleted"
