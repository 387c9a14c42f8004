"""Messages on the log that are not events (a plain NATS client can store anything): no
job is wedged by one, and every reader sees the same messages.

Before: garbage on a blocked job's subject made the scheduler's JobReady conflict forever,
on a ready job's subject the claim was dropped as stale, on a running job's subject the
worker's result was refused and redelivered every lease; a valid event stored without
headers was read by nats-py readers but skipped by the bare-socket one.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import msgspec

from jobstream.config import Settings
from jobstream.decide import Cancel
from jobstream.events import JobCanceled, JobCompleted, JobEvent, JobReady, JobStarted
from jobstream.model import Resources
from jobstream.ops.explain import explain_job
from jobstream.ops.submit import submit_workflow
from jobstream.projections.duck import DuckStore
from jobstream.projections.service import replay_into
from jobstream.scheduler.service import Scheduler
from jobstream.streams.bulk import read_bulk
from jobstream.streams.connection import Connection
from jobstream.streams.reader import decode_batch
from jobstream.streams.store import IllFormed
from jobstream.streams.subjects import EVENTS_STREAM, job_event_subject, job_subjects
from jobstream.views.audit import wait_in_log
from jobstream.views.history import event_row, history
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

from .helpers import histories, types, workflow

GARBAGE = b"GARBAGE"


def options(tmp_path: Path) -> WorkerOptions:
    return WorkerOptions(capacity=Resources(num_cpus=2, memory_mib=1024), log_dir=tmp_path / "logs")


async def until_in_log(conn: Connection, wf: str, n: int, kind: type[JobEvent]) -> None:
    with anyio.fail_after(20):
        while not any(isinstance(e, kind) for e in (await histories(conn, wf)).get(n, [])):
            await anyio.sleep(0.05)


async def test_garbage_on_a_blocked_job_does_not_wedge_it(
    conn: Connection, settings: Settings, tmp_path: Path
) -> None:
    spec = workflow(("first", "sleep 1", ()), ("second", "true", (0,)))
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, 30.0).run)
        await tg.start(Worker(conn, options(tmp_path)).run)
        wf = await submit_workflow(conn, spec, workdir=str(tmp_path))
        await until_in_log(conn, wf, 0, JobStarted)
        garbage = (await conn.js.publish(job_event_subject(wf, 1, "JobStarted"), GARBAGE)).seq
        with anyio.fail_after(30):
            audit = await wait_in_log(conn, wf)
        tg.cancel_scope.cancel()
    assert audit.succeeded()
    assert types((await histories(conn, wf))[1])[-1] == "JobCompleted"
    shown = [event_row(m) for batch in [b async for b in history(conn, wf, 1)] for m in batch]
    assert [r["type"] for r in shown if r["seq"] == garbage] == ["(ill-formed)"]
    assert (await explain_job(conn, settings, wf, "second")) == ["completed"]


async def test_garbage_on_a_ready_job_does_not_make_its_dispatch_stale(
    conn: Connection, tmp_path: Path
) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, 30.0).run)
        wf = await submit_workflow(conn, workflow(("only", "true", ())), workdir=str(tmp_path))
        await until_in_log(conn, wf, 0, JobReady)
        await conn.js.publish(
            job_event_subject(wf, 0, "JobStarted"), GARBAGE
        )  # before any worker claims it
        await tg.start(Worker(conn, options(tmp_path)).run)
        with anyio.fail_after(30):
            audit = await wait_in_log(conn, wf)
        tg.cancel_scope.cancel()
    assert audit.succeeded()


async def test_garbage_on_a_running_job_neither_ends_it_nor_refuses_its_result(
    conn: Connection, tmp_path: Path
) -> None:
    lease = WorkerOptions(
        capacity=Resources(num_cpus=2, memory_mib=1024), log_dir=tmp_path / "logs", lease_s=1.5
    )
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, 1.5).run)
        await tg.start(Worker(conn, lease).run)
        wf = await submit_workflow(conn, workflow(("slow", "sleep 2", ())), workdir=str(tmp_path))
        await until_in_log(conn, wf, 0, JobStarted)
        await conn.js.publish(
            job_event_subject(wf, 0, "JobStarted"), GARBAGE
        )  # the lease checks see it on top
        with anyio.fail_after(30):
            audit = await wait_in_log(conn, wf)
        tg.cancel_scope.cancel()
    assert audit.succeeded()
    (ended,) = [e for e in (await histories(conn, wf))[0] if isinstance(e, JobCompleted)]
    assert ended.return_code == 0 and ended.exec_time_s >= 1.9  # it ran to its end


async def test_a_decision_refused_for_garbage_alone_is_appended_after_it(
    conn: Connection, tmp_path: Path
) -> None:
    """The job's subject moved on, but only by garbage: the repository appends after it
    (the worker's claim, start and result and the user's commands all do so)."""
    wf = await submit_workflow(conn, workflow(("a", "sleep 1", ())), workdir=str(tmp_path))
    version = await conn.jobs.load(wf, 0)
    assert version is not None
    await conn.js.publish(job_event_subject(wf, 0, "JobStarted"), GARBAGE)
    after = await conn.jobs.execute(version, Cancel(at=time.time(), actor="u", reason="r"))
    assert after.job.state.value == "canceled"
    last = await conn.store.last(job_subjects(wf, 0))
    assert last is not None and not isinstance(last, IllFormed) and last.seq == after.seq


async def test_a_valid_event_stored_without_headers_is_read_by_every_reader(
    conn: Connection, tmp_path: Path
) -> None:
    wf = await submit_workflow(conn, workflow(("a", "true", ()), ("b", "true", ())), workdir=".")
    canceled = JobCanceled(wf=wf, job=1, at=time.time(), actor="user:plain", reason="by hand")
    seq = (
        await conn.js.publish(
            job_event_subject(wf, 1, "JobCanceled"), msgspec.json.encode(canceled)
        )
    ).seq
    last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq
    bulk = [raw async for raw in read_bulk(conn.js, conn.endpoint)]
    decoded = [stored for raw in bulk for stored in decode_batch(raw).events]
    assert [s.seq for s in decoded] == list(range(1, last + 1))
    assert decoded[-1].seq == seq and decoded[-1].event == canceled
    path = tmp_path / "rebuilt.duckdb"
    assert await replay_into(conn, path) == last
    store = DuckStore(path, read_only=True)
    try:
        rows = store.query(f"SELECT job, state FROM jobs WHERE wf = '{wf}' ORDER BY job")
    finally:
        store.close()
    assert rows.to_pylist() == [{"job": 0, "state": "submitted"}, {"job": 1, "state": "canceled"}]
