"""A worker whose JobStarted the server refuses ends the job's process at once.

The refusal means the job's subject moved on between the claim and the start: here a
cancellation whose notice never reached the worker. Nothing else would stop the process
before it ends by itself (the lease loop only checks jobs whose start was stored).
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from jobstream.events import JobCanceled, JobEvent, JobStarted
from jobstream.model import Resources, WorkItem
from jobstream.ops.submit import submit_workflow
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection
from jobstream.streams.store import EventStore
from jobstream.views.audit import wait_in_log
from jobstream.workers import attempt as attempt_module
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

from .helpers import histories, types, workflow
from .processes import alive


async def test_a_refused_job_started_ends_the_process_at_once(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    send = EventStore.send

    async def cancel_first(
        store: EventStore, event: JobEvent, expected: int | None, nonce: str = ""
    ) -> object:
        """Job 0's JobStarted: a cancellation lands first (its notice is lost)."""
        if isinstance(event, JobStarted) and event.job == 0:
            canceled = JobCanceled(
                wf=event.wf, job=0, at=time.time(), actor="user:t", reason="notice lost"
            )
            await store.append(canceled, expected)
        return await send(store, event, expected, nonce)

    monkeypatch.setattr(EventStore, "send", cancel_first)
    pid_file = tmp_path / "pid0"
    spec = workflow(
        ("doomed", f"echo $$ > {pid_file}; exec sleep 30", ()),
        ("other", "sleep 30", ()),  # keeps the workflow (and the worker) going
    )
    options = WorkerOptions(
        capacity=Resources(num_cpus=2, memory_mib=1024), log_dir=tmp_path / "logs"
    )
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, 30.0).run)
        await tg.start(Worker(conn, options).run)
        wf = await submit_workflow(conn, spec, workdir=str(tmp_path))
        with anyio.fail_after(10):
            while not pid_file.exists() or not pid_file.read_text().strip():
                await anyio.sleep(0.05)
            pid = int(pid_file.read_text())
            while alive(pid):  # ended and reaped, long before its 30 s
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert types((await histories(conn, wf))[0]) == [
        "JobSubmitted", "JobReady", "JobClaimed", "JobCanceled"
    ]  # fmt: skip


async def test_a_worker_takes_over_its_own_job_after_its_attempt_failed(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt that fails after its process ran (here: its output could not be kept)
    leaves the job running under this very worker; at the redelivery the worker takes it
    over itself. Before, it asked itself whether it held the job, heard its new attempt
    say yes, and left the job claimed forever."""
    real = attempt_module.keep_output
    failed: list[int] = []

    async def fail_once(ctx: object, scratch: object, item: WorkItem, attempt: int) -> object:
        if not failed:
            failed.append(item.job)
            raise RuntimeError("lost mid-attempt")
        return await real(ctx, scratch, item, attempt)  # type: ignore[arg-type]

    monkeypatch.setattr(attempt_module, "keep_output", fail_once)
    options = WorkerOptions(
        capacity=Resources(num_cpus=1, memory_mib=512), log_dir=tmp_path / "logs", lease_s=2.0
    )
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, 2.0).run)
        await tg.start(Worker(conn, options).run)
        spec = workflow(("a", "echo ran >> runs; echo out", ()))
        wf = await submit_workflow(conn, spec, workdir=str(tmp_path))
        with anyio.fail_after(30):
            status = await wait_in_log(conn, wf)
        tg.cancel_scope.cancel()
    assert failed == [0] and status.succeeded()
    assert types((await histories(conn, wf))[0]).count("JobCompleted") == 1
    assert (tmp_path / "runs").read_text() == "ran\nran\n"  # once each, one after the other
