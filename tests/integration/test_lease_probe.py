"""A redelivered dispatch is taken over only from a worker that does not say it holds
the job. Before: any redelivery (a renewal lost while the server restarted, a client
sending a NAK) took a running job from its live worker, and the job ran twice at once
until the first worker's next lease check."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import msgspec
from nats.aio.msg import Msg

from jobstream.model import JobNotice, JobState, Resources
from jobstream.ops.submit import submit_workflow
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection
from jobstream.streams.subjects import lease_probe_subject
from jobstream.views.audit import wait_in_log
from jobstream.workers.context import WorkerOptions
from jobstream.workers.probe import FREE, holder_answers
from jobstream.workers.service import Worker

from .helpers import histories, types, workflow

LEASE_S = 3.0


def options(tmp_path: Path, name: str) -> WorkerOptions:
    return WorkerOptions(
        capacity=Resources(num_cpus=1, memory_mib=512),
        lease_s=LEASE_S,
        log_dir=tmp_path / "logs",
        worker_id=name,
    )


async def job_state(conn: Connection, wf: str) -> JobState | None:
    version = await conn.jobs.load(wf, 0)
    return version.job.state if version else None


async def test_a_redelivery_takes_no_job_from_its_live_worker(
    conn: Connection, tmp_path: Path
) -> None:
    renewals: list[str] = []  # the ack subjects of the holder's renewals

    async def heard(msg: Msg) -> None:
        renewals.append(msg.subject)

    watch = await conn.nc.subscribe("$JS.ACK.WORK.>", cb=heard)
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, LEASE_S).run)
        await tg.start(Worker(conn, options(tmp_path, "holder")).run)
        wf = await submit_workflow(conn, workflow(("j", "sleep 5", ())), workdir=str(tmp_path))
        with anyio.fail_after(10):
            while await job_state(conn, wf) is not JobState.RUNNING or not renewals:
                await anyio.sleep(0.05)
        await tg.start(Worker(conn, options(tmp_path, "taker")).run)
        await conn.nc.publish(renewals[0], b"-NAK")  # redelivered at once, to the taker
        with anyio.fail_after(20):
            audit = await wait_in_log(conn, wf)
        tg.cancel_scope.cancel()
    await watch.unsubscribe()
    assert audit.succeeded()
    history = (await histories(conn, wf))[0]
    assert "JobLost" not in types(history)
    assert {getattr(event, "worker", None) for event in history} == {None, "holder"}


async def test_the_probe_answers_only_for_jobs_held(conn: Connection, tmp_path: Path) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(Worker(conn, options(tmp_path, "idle")).run)
        began = time.monotonic()
        assert not await holder_answers(conn.nc, 5.0, "idle", "wf0", 0)  # FREE, at once
        assert time.monotonic() - began < 1.0
        reply = await conn.nc.request(
            lease_probe_subject("idle"), msgspec.json.encode(JobNotice(wf="wf0", job=0))
        )
        assert reply.data == FREE
        with anyio.move_on_after(0.5) as unanswered:  # malformed: ignored, not a crash
            await conn.nc.request(lease_probe_subject("idle"), b"GARBAGE", timeout=5)
        assert unanswered.cancelled_caught
        began = time.monotonic()
        assert not await holder_answers(conn.nc, 1.0, "gone", "wf0", 0)  # nobody listens
        assert 0.9 < time.monotonic() - began < 2.0
        tg.cancel_scope.cancel()
