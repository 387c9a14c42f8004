"""``python -m benchmarks restart [--events N,M] [--jobs OPEN]``: how long a scheduler
takes to start (restore, replay, caught up) against the length of the finished history
before it.

For each history length: a fresh server gets that many events of finished workflows
(each 10,000 jobs run to completion, then WorkflowCompleted) and one open workflow of
OPEN submitted jobs (default 10,000), which a first scheduler makes ready. Then a
scheduler starts with its snapshot removed (it replays the whole log: the start-up
before snapshots) and stops, keeping one; the next starts from it. Flat start-up means
the last column does not grow with the first.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio

from benchmarks.projection import lifecycle, publish
from jobstream.config import load_settings
from jobstream.events import Event, JobSubmitted, WorkflowCompleted, WorkflowSubmitted
from jobstream.host.embedded import embedded_server
from jobstream.host.loop import run_async
from jobstream.model import JobDef
from jobstream.scheduler.partition import WHOLE_LOG
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection, open_connection
from jobstream.streams.subjects import SNAPSHOTS_BUCKET

FINISHED_SIZE = 10_000  # jobs per finished workflow
EVENTS_PER_JOB = 5


def submitted(wf: str, jobs: int) -> WorkflowSubmitted:
    return WorkflowSubmitted(
        wf=wf, at=time.time(), actor="user:bench", name=wf, user="bench", spec_digest="-",
        job_count=jobs,
    )  # fmt: skip


async def history(conn: Connection, events: int, open_jobs: int) -> None:
    """``events`` of finished workflows, then one open workflow of ``open_jobs``."""
    left, k = events, 0
    while left > 0:
        jobs = max(1, min(FINISHED_SIZE, (left - 2) // EVENTS_PER_JOB))
        wf, now = f"done{k:06d}", time.time()
        batch: list[Event] = [submitted(wf, jobs)]
        for n in range(jobs):
            batch += lifecycle(wf, n, now)
        batch.append(
            WorkflowCompleted(wf=wf, at=now, actor="scheduler", counts={"completed": jobs})
        )
        await publish(conn, batch)
        left -= len(batch)
        k += 1
    now = time.time()
    batch = [submitted("open", open_jobs)]
    batch += [
        JobSubmitted(
            wf="open", job=n, at=now, actor="user:bench",
            spec=JobDef(index=n, name=f"job_{n}", command="true"),
        )
        for n in range(open_jobs)
    ]  # fmt: skip
    await publish(conn, batch)


async def start_once(conn: Connection) -> float:
    """Seconds from a scheduler's start until it has caught up with the log; then stop
    it (it keeps a snapshot as it stops)."""
    began = time.perf_counter()
    async with anyio.create_task_group() as tg:
        await tg.start(Scheduler(conn, lease_s=30.0).run)
        took = time.perf_counter() - began
        await anyio.sleep(2.0)  # let it carry out the open workflow's first decisions
        tg.cancel_scope.cancel()
    return took


async def measure(events: int, open_jobs: int, root: Path) -> tuple[float, float, float]:
    server = embedded_server(root / "nats", sync=load_settings().sync)
    async with server as url, open_connection(url) as conn:
        began = time.perf_counter()
        await history(conn, events, open_jobs)
        made = time.perf_counter() - began
        await start_once(conn)  # decides the open workflow's first steps, as a live one would
        await forget_snapshot(conn)
        cold = await start_once(conn)
        warm = await start_once(conn)
    return made, cold, warm


async def forget_snapshot(conn: Connection) -> None:
    """Remove the scheduler's snapshot: the next start replays the whole log."""
    store = await conn.js.object_store(SNAPSHOTS_BUCKET)
    await store.delete(WHOLE_LOG.lease_key())


def main(lengths: list[int], open_jobs: int) -> int:
    print(f"scheduler start, {open_jobs:,} open jobs (seconds until caught up)")
    print(f"{'history events':>15} {'made in':>9} {'whole log':>10} {'snapshot':>9}")
    for events in lengths:
        with tempfile.TemporaryDirectory(prefix="jobstream-restart-") as tmp:
            made, cold, warm = run_async(measure, events, open_jobs, Path(tmp))
        print(f"{events:>15,} {made:>8.1f}s {cold:>9.2f}s {warm:>8.2f}s", flush=True)
    return 0
