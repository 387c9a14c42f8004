"""``python -m benchmarks archive [--events N] [--jobs OPEN]``: what archiving finished
workflows does to the log and to the readers of the whole history.

A fresh server gets N events of finished workflows (10,000 jobs each, as in
``restart``) and one open workflow of OPEN submitted jobs. A projector catches up; then
every finished workflow is archived (``Projector.archive``). Printed: the archiving
rate, EVENTS before and after (messages, bytes), the ARCHIVE object store's bytes, and
before/after pairs of a rebuild (replaying the archives with the log) and of a
scheduler start without its snapshot (whole-log replay).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio

from benchmarks.restart import forget_snapshot, history, start_once
from jobstream.config import load_settings
from jobstream.host.embedded import embedded_server
from jobstream.host.loop import run_async
from jobstream.projections.service import Projector, replay_into
from jobstream.streams.connection import Connection, open_connection
from jobstream.streams.setup import ensure_streams
from jobstream.streams.subjects import ARCHIVE_BUCKET, EVENTS_STREAM


async def stream_size(conn: Connection, stream: str) -> tuple[int, int]:
    state = (await conn.js.stream_info(stream)).state
    return int(state.messages), int(state.bytes)


async def rebuild_s(conn: Connection, root: Path) -> float:
    began = time.perf_counter()
    await replay_into(conn, root / f"rebuilt-{time.monotonic_ns()}.duckdb")
    return time.perf_counter() - began


async def measure(events: int, open_jobs: int, root: Path) -> dict[str, float]:
    server = embedded_server(root / "nats", sync=load_settings().sync)
    found: dict[str, float] = {}
    async with server as url, open_connection(url) as conn:
        await ensure_streams(conn.nc, conn.js, upgrade=lambda why: None)
        await history(conn, events, open_jobs)
        found["messages_before"], found["bytes_before"] = await stream_size(conn, EVENTS_STREAM)
        found["rebuild_before"] = await rebuild_s(conn, root)
        await start_once(conn)
        await forget_snapshot(conn)
        found["start_before"] = await start_once(conn)
        projector = Projector(conn, root / "live.duckdb")
        async with anyio.create_task_group() as tg:
            await tg.start(projector.run)
            await projector.caught_up(await conn.store.end())
            finished = await projector.query("SELECT wf FROM workflows WHERE wf <> 'open'")
            began = time.perf_counter()
            archived = 0
            for wf in finished.column("wf").to_pylist():
                done = await projector.archive(wf)
                archived += int(str(done["events"]))
            found["archive_s"] = time.perf_counter() - began
            found["archived"] = archived
            tg.cancel_scope.cancel()
        found["messages_after"], found["bytes_after"] = await stream_size(conn, EVENTS_STREAM)
        found["archive_bytes"] = (await stream_size(conn, f"OBJ_{ARCHIVE_BUCKET}"))[1]
        found["rebuild_after"] = await rebuild_s(conn, root)
        await forget_snapshot(conn)
        found["start_after"] = await start_once(conn)
    return found


def main(events: int, open_jobs: int) -> int:
    with tempfile.TemporaryDirectory(prefix="jobstream-archive-") as tmp:
        m = run_async(measure, events, open_jobs, Path(tmp))
    mib = 1024 * 1024
    print(f"{events:,} events of finished workflows, {open_jobs:,} open jobs")
    print(
        f"archived {m['archived']:,.0f} events in {m['archive_s']:.1f} s "
        f"({m['archived'] / m['archive_s']:,.0f} events/s)"
    )
    print(f"{'':28} {'before':>12} {'after':>12}")
    print(f"{'EVENTS messages':28} {m['messages_before']:>12,.0f} {m['messages_after']:>12,.0f}")
    print(
        f"{'EVENTS MiB':28} {m['bytes_before'] / mib:>12.1f} {m['bytes_after'] / mib:>12.1f}"
        f"   (ARCHIVE: {m['archive_bytes'] / mib:.1f} MiB)"
    )
    print(f"{'rebuild s':28} {m['rebuild_before']:>12.2f} {m['rebuild_after']:>12.2f}")
    print(
        f"{'scheduler start, no snapshot':28} {m['start_before']:>12.2f} {m['start_after']:>12.2f}"
    )
    return 0
