"""``replay``: rebuild the read models from N events (``jobstream rebuild``'s code path)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.projection import publish, workflow_events
from benchmarks.results import Measure
from jobstream.config import load_settings
from jobstream.host.embedded import embedded_server
from jobstream.host.loop import run_async
from jobstream.projections.service import replay_into
from jobstream.streams.connection import open_connection


async def measure(events: int, root: Path) -> Measure:
    server = embedded_server(root / "nats", sync=load_settings().sync)
    async with server as url, open_connection(url) as conn:
        await publish(conn, workflow_events("replay", events // 5))
        began = time.perf_counter()
        replayed = await replay_into(conn, root / "rebuilt.duckdb")
        seconds = time.perf_counter() - began
    return Measure("replay", "jobstream", replayed, seconds, replayed / seconds, unit="events/s")


def run(quick: bool, events: int | None = None) -> list[Measure]:
    with tempfile.TemporaryDirectory(prefix="jobstream-replay-") as tmp:
        return [run_async(measure, events or (50_000 if quick else 1_000_000), Path(tmp))]
