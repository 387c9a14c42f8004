"""A scheduler that stops keeps a snapshot; the next one starts from it (the log before
it is not read again), and a completed workflow it let go of is read back from the log
when it is restarted, its restarted job run again."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from jobstream.model import Resources
from jobstream.ops.restart import restart_failed
from jobstream.ops.submit import submit_workflow
from jobstream.scheduler import service as scheduler_service
from jobstream.scheduler.partition import WHOLE_LOG
from jobstream.scheduler.service import Scheduler
from jobstream.scheduler.snapshot import load, restore
from jobstream.streams.connection import Connection
from jobstream.streams.subjects import EVENTS_STREAM
from jobstream.views.audit import wait_in_log
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

from .helpers import histories, types, workflow


async def test_a_restart_starts_from_the_snapshot(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = workflow(("ok", "true", ()), ("flaky", "test -f again", ()), ("after", "true", (1,)))
    wf = await submit_workflow(conn, spec, workdir=os.getcwd())
    options = WorkerOptions(capacity=Resources(num_cpus=2, memory_mib=512), log_dir=tmp_path / "l")
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, lease_s=5).run)
        tg.start_soon(Worker(conn, options).run)
        with anyio.fail_after(30):
            status = await wait_in_log(conn, wf)
        assert not status.succeeded()
        tg.cancel_scope.cancel()  # a clean stop: the snapshot is kept
    kept = await load(conn.js, WHOLE_LOG.lease_key())
    info = await conn.js.stream_info(EVENTS_STREAM)
    snapshot = restore(kept or b"", WHOLE_LOG, str(info.created), info.state.last_seq)
    assert snapshot is not None and wf in snapshot.finished
    # It covers what the scheduler had read; its own last appends and the worker's
    # WorkerStopped may come after (read again at the next start: no-ops).
    assert info.state.last_seq - 5 <= snapshot.last_seq <= info.state.last_seq

    # The next scheduler reads nothing before the snapshot's sequence.
    read_from: list[int] = []
    real = scheduler_service.read_to_end

    def spy(*args: object, from_seq: int = 1, **kwargs: object) -> object:
        if len(args) == 2:  # the whole log (a workflow's history has a filter)
            read_from.append(from_seq)
        return real(*args, from_seq=from_seq, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scheduler_service, "read_to_end", spy)
    (tmp_path / "again").touch()
    async with anyio.create_task_group() as tg:
        second = Scheduler(conn, lease_s=5)
        await tg.start(second.run)
        assert read_from == [snapshot.last_seq + 1]
        # Let go of (or read back already: the first one's WorkflowCompleted came after
        # what its snapshot covers, and reading it again reads the workflow back).
        assert wf in second.state.finished or second.state.workflows[wf].completed
        tg.start_soon(Worker(conn, options).run)
        assert await restart_failed(conn, wf) == [1, 2]
        with anyio.fail_after(30):
            status = await wait_in_log(conn, wf)
        tg.cancel_scope.cancel()
    assert status.succeeded()
    found = await histories(conn, wf)
    assert types(found[1]).count("JobCompleted") == 1
    assert types(found[2]).count("JobCompleted") == 1
