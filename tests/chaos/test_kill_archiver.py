"""kill -9 the projector again and again while it archives: every finished workflow ends
archived once, out of EVENTS, with every event in its archive, and the read models equal
a rebuild (which reads the archives)."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import anyio
import pytest
from benchmarks.projection import lifecycle, publish
from benchmarks.restart import submitted

from jobstream.archive.store import announcements, archive_of, archived_rows
from jobstream.events import Event, WorkflowCompleted
from jobstream.projections.kv import job_records
from jobstream.projections.service import replay_into
from jobstream.streams.connection import Connection
from jobstream.streams.setup import ensure_streams
from jobstream.streams.subjects import EVENTS_STREAM, workflow_filter

from ..integration.processes import spawn, stop
from ..integration.test_read_models import catch_up, dump

WORKFLOWS, JOBS, KILLS = 16, 800, 4


async def finished_history(conn: Connection) -> dict[str, int]:
    """Finished workflows, their events interleaved; each one's event count."""
    now, counts = time.time(), {}
    streams: list[list[Event]] = []
    for k in range(WORKFLOWS):
        wf = f"done{k}"
        events: list[Event] = [submitted(wf, JOBS)]
        for n in range(JOBS):
            events += lifecycle(wf, n, now)
        events.append(WorkflowCompleted(wf=wf, at=now, actor="scheduler", counts={}))
        streams.append(events)
        counts[wf] = len(events)
    step = 500
    for start in range(0, max(map(len, streams)), step):  # interleaved in chunks
        for events in streams:
            if events[start : start + step]:
                await publish(conn, events[start : start + step])
    return counts


async def in_log(conn: Connection, wf: str) -> int:
    info = await conn.js.stream_info(EVENTS_STREAM, subjects_filter=workflow_filter(wf))
    return sum((info.state.subjects or {}).values())


async def test_archiving_survives_kill_9_of_the_projector(
    conn: Connection, nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOBSTREAM_RETENTION_S", "1")
    await ensure_streams(conn.nc, conn.js, upgrade=lambda why: None)
    counts = await finished_history(conn)
    state = tmp_path / "state"
    args = ("projector", "--nats-url", nats_url, "--state-dir", str(state))
    rng, kills, at_kills = random.Random(7), 0, []
    projector = None
    try:
        with anyio.fail_after(150):
            while True:
                log = tmp_path / f"projector{kills}.log"
                projector = spawn(*args, cwd=tmp_path, log=log)
                while "active here" not in log.read_text():  # a takeover waits out the lease
                    await anyio.sleep(0.1)
                if kills == KILLS:
                    break
                await anyio.sleep(rng.uniform(0.2, 2.0))  # catching up, or archiving
                os.kill(projector.pid, signal.SIGKILL)
                projector.wait()
                kills += 1
                at_kills.append(len(await announcements(conn)))
            while {ref.wf for ref in await announcements(conn)} != set(counts) or any(
                [await in_log(conn, wf) > 1 for wf in counts]
            ):
                await anyio.sleep(0.5)
    finally:
        stopped = None if projector is None else stop(projector)  # none outlives the test
    assert stopped == 0
    assert any(0 < n < WORKFLOWS for n in at_kills), at_kills  # some mid-archiving

    for wf, count in counts.items():
        ref = await archive_of(conn, wf)
        assert ref is not None and ref.events == count
        seqs = [s async for batch in archived_rows(conn, ref, 10_000) for s in batch.seqs]
        assert len(seqs) == len(set(seqs)) == count
        assert await in_log(conn, wf) == 1  # the announcement
        assert await job_records(conn.js, wf) == []
    live = state / "jobstream.duckdb"
    await catch_up(conn, live)
    await replay_into(conn, tmp_path / "rebuilt.duckdb")
    assert dump(live) == dump(tmp_path / "rebuilt.duckdb")
