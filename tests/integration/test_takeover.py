"""A takeover is one write: JobLost and the new JobClaimed are stored together or not at
all (an atomic batch), and a scheduler that finds a takeover half done (a JobLost with no
JobClaimed after it, from a server without atomic batches) dispatches the job again while
it runs (before: the job stayed ready with nothing queued until the scheduler restarted).
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from jobstream.decide import Claim, MakeReady, Reclaim
from jobstream.events import JobLost
from jobstream.model import Resources
from jobstream.ops.submit import submit_workflow
from jobstream.scheduler import service as scheduler_service
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection
from jobstream.streams.store import Conflict
from jobstream.streams.subjects import WORK_STREAM, job_subjects
from jobstream.views.audit import wait_in_log
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

from .helpers import histories, types, workflow


async def test_a_takeover_is_stored_whole_or_not_at_all(conn: Connection) -> None:
    assert conn.store.atomic  # nats-server 2.12+: the EVENTS stream takes atomic batches
    wf = await submit_workflow(conn, workflow(("a", "sleep 1", ())), workdir=".")
    version = await conn.jobs.load(wf, 0)
    assert version is not None
    make_ready = MakeReady(at=1.0, actor="s", pool="default", hardware_class="c")
    ready = await conn.jobs.execute(version, make_ready)
    held = await conn.jobs.execute(ready, Claim(at=1.0, actor="w1", worker="w1", lease_s=30))
    taken = await conn.jobs.execute(held, Reclaim(at=2.0, actor="w2", worker="w2", lease_s=30))
    last = await conn.store.last(job_subjects(wf, 0))
    assert last is not None and last.seq == taken.seq
    assert types((await histories(conn, wf))[0])[-2:] == ["JobLost", "JobClaimed"]
    with pytest.raises(Conflict):  # a second taker decided on the old claim: nothing stored
        await conn.jobs.execute(held, Reclaim(at=3.0, actor="w3", worker="w3", lease_s=30))
    assert types((await histories(conn, wf))[0])[-2:] == ["JobLost", "JobClaimed"]


async def test_a_half_done_takeover_is_dispatched_again_while_the_scheduler_runs(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler_service, "SWEEP_S", 0.2)
    monkeypatch.setattr(scheduler_service, "STRANDED_S", 0.5)
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, 30.0).run)
        wf = await submit_workflow(conn, workflow(("only", "true", ())), workdir=str(tmp_path))
        with anyio.fail_after(10):
            while (await conn.js.stream_info(WORK_STREAM)).state.messages == 0:
                await anyio.sleep(0.05)
        # A worker claimed it and died; its taker stored JobLost and died before JobClaimed;
        # the dispatch was acked meanwhile (nothing is queued for the job any more).
        version = await conn.jobs.load(wf, 0)
        assert version is not None
        await conn.jobs.execute(version, Claim(at=time.time(), actor="w1", worker="w1", lease_s=30))
        await conn.js.purge_stream(WORK_STREAM)
        await conn.store.append(
            JobLost(
                wf=wf,
                job=0,
                at=time.time(),
                actor="w2",
                worker="w1",
                attempt=1,
                reason="lease expired",
            ),
            (await conn.jobs.load(wf, 0)).seq,  # type: ignore[union-attr]
        )
        options = WorkerOptions(
            capacity=Resources(num_cpus=1, memory_mib=512), log_dir=tmp_path / "logs"
        )
        await tg.start(Worker(conn, options).run)
        with anyio.fail_after(20):
            audit = await wait_in_log(conn, wf)
        tg.cancel_scope.cancel()
    assert audit.succeeded()
    assert types((await histories(conn, wf))[0])[-5:] == [
        "JobClaimed", "JobLost", "JobClaimed", "JobStarted", "JobCompleted"
    ]  # fmt: skip
