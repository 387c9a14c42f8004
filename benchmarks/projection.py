"""Projection throughput, rebuild rate and projection lag, against a real nats-server.

1. Publish N synthetic events (one workflow; per job: submitted, ready, claimed, started,
   completed), pipelined.
2. A projector starts on an empty DuckDB file: events/s until its checkpoint reaches the
   last sequence (DuckDB rows + KV records + checkpoint, as in production).
3. ``rebuild``: replay the whole log into a fresh file: events/s.
4. Lag: with the projector running, job lifecycles are published at 1,000 completions/s
   for a few seconds; lag = time from a JobCompleted's acknowledgement to its KV record
   showing ``completed`` (what ``jobstream status`` sees).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import anyio

from benchmarks.machine import describe
from jobstream import codec
from jobstream.config import load_settings
from jobstream.events import (
    Event,
    JobClaimed,
    JobCompleted,
    JobReady,
    JobStarted,
    JobSubmitted,
    WorkflowSubmitted,
)
from jobstream.host.embedded import embedded_server
from jobstream.host.loop import run_async
from jobstream.model import JobDef
from jobstream.projections.kv import ensure_bucket
from jobstream.projections.service import Projector, replay_into
from jobstream.streams.connection import Connection, open_connection
from jobstream.streams.subjects import EVENTS_STREAM, event_subject


def lifecycle(wf: str, n: int, now: float) -> list[Event]:
    spec = JobDef(index=n, name=f"job_{n}", command=f"python sim.py --case {n}")
    common = {"wf": wf, "job": n, "at": now}
    return [
        JobSubmitted(**common, actor="user:bench", spec=spec),
        JobReady(
            **common, actor="scheduler", pool="default", hardware_class="c1.m1024.g0.n1.t3600"
        ),
        JobClaimed(**common, actor="w1", worker="w1", attempt=1, lease_s=30.0),
        JobStarted(**common, actor="w1", worker="w1", attempt=1, pid=100 + n, host="node1"),
        JobCompleted(**common, actor="w1", worker="w1", attempt=1, return_code=0, exec_time_s=1.0),
    ]


async def publish(conn: Connection, events: list[Event]) -> list[float]:
    """Publish in order, pipelined; returns each event's acknowledgement time."""
    acked: list[float] = []
    for start in range(0, len(events), 5000):
        futures = [
            await conn.pipeline.publish(event_subject(e), codec.encode(e), codec.headers_for(e))
            for e in events[start : start + 5000]
        ]
        for future in futures:
            await conn.pipeline.ack(future)
        acked += [time.monotonic()] * len(futures)
    return acked


def workflow_events(wf: str, jobs: int, offset: int = 0) -> list[Event]:
    now = time.time()
    events: list[Event] = []
    for n in range(offset, offset + jobs):
        events += lifecycle(wf, n, now)
    return events


async def run(total_events: int, lag_seconds: float) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = embedded_server(Path(tmp) / "nats", sync=load_settings().sync)
        async with server as url, open_connection(url) as conn:
            jobs = total_events // 5
            began = time.monotonic()
            await publish(
                conn,
                [
                    WorkflowSubmitted(
                        wf="bench",
                        at=time.time(),
                        actor="user:bench",
                        name="bench",
                        user="bench",
                        spec_digest="-",
                        job_count=jobs,
                    )
                ],
            )
            await publish(conn, workflow_events("bench", jobs))
            results["publish_events_per_s"] = total_events / (time.monotonic() - began)
            last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq

            projector = Projector(conn, Path(tmp) / "live.duckdb")
            async with anyio.create_task_group() as tg:
                began = time.monotonic()
                await tg.start(projector.run)
                await projector.caught_up(last)
                results["project_events_per_s"] = last / (time.monotonic() - began)
                results["lag_p50_s"], results["lag_p99_s"], results["lag_max_s"] = await lag(
                    conn, jobs, lag_seconds
                )
                tg.cancel_scope.cancel()

            began = time.monotonic()
            replayed = await replay_into(conn, Path(tmp) / "rebuilt.duckdb")
            results["rebuild_events_per_s"] = replayed / (time.monotonic() - began)
            results["events"] = float(last)
    return results


async def lag(conn: Connection, offset: int, seconds: float) -> tuple[float, float, float]:
    """Publish 1,000 job lifecycles per second; time until each completion shows in KV."""
    kv = await ensure_bucket(conn.js)
    completed_at: dict[str, float] = {}
    published_at: dict[str, float] = {}
    watcher = await kv.watch("lag.*", ignore_deletes=True)

    async def observe() -> None:
        async for entry in watcher:
            if entry is not None and entry.value and b'"completed"' in entry.value:
                completed_at.setdefault(entry.key, time.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(observe)
        per_tick, tick = 100, 0.1  # 1,000 completions per second
        n = offset
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            events = workflow_events("lag", per_tick, n)
            acked = await publish(conn, events)
            for i in range(per_tick):
                published_at[f"lag.{n + i}"] = acked[5 * i + 4]
            n += per_tick
            await anyio.sleep(max(0.0, tick - (time.monotonic() - began) % tick))
        with anyio.move_on_after(30):
            while len(completed_at) < len(published_at):
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    lags = sorted(completed_at[k] - t for k, t in published_at.items() if k in completed_at)
    return statistics.median(lags), lags[int(0.99 * (len(lags) - 1))], lags[-1]


def main(*, quick: bool, events: int | None) -> int:
    total = events or (50_000 if quick else 1_000_000)
    results = run_async(run, total, 2.0 if quick else 10.0)
    print(f"machine: {describe()}")
    print(f"{'measure':<28}{'value':>14}")
    for key, value in results.items():
        print(f"{key:<28}{value:>14,.3f}" if "lag" in key else f"{key:<28}{value:>14,.0f}")
    target = results["project_events_per_s"] >= 100_000 and results["lag_p99_s"] < 1.0
    print(
        f"targets (>= 100,000 events/s projected, p99 lag < 1 s): {'met' if target else 'NOT met'}"
    )
    return 0
