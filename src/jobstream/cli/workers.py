"""``jobstream workers``: every worker as its heartbeat shows it (the WORKERS bucket)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from jobstream.cli.common import (
    Json,
    NatsUrl,
    StateDir,
    guarded,
    on_server,
    out,
    print_json,
    settings_from,
)
from jobstream.model import WorkerHeartbeat
from jobstream.streams.connection import Connection
from jobstream.views.workers import LOST, WorkerView, worker_views

SHOWN_JOBS = 3
STATE_COLORS = {"running": "green", "stopping": "yellow", "stopped": "dim", LOST: "red"}


@guarded
def workers(
    all_workers: Annotated[
        bool, typer.Option("--all", help="also the workers that stopped cleanly")
    ] = False,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """List the workers: capacity, load, the jobs they run, their last heartbeat.

    A worker whose heartbeat is three intervals late shows as "lost?" (killed, or cut
    off from the server). Admins only: a submitter's login reaches no JetStream.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)

    async def listed(conn: Connection) -> list[WorkerView]:
        return await worker_views(conn, time.time(), stopped=all_workers)

    found = on_server(settings, listed, embedded=False, name="jobstream-workers")
    if json_output:
        print_json([view.as_json() for view in found])
        return
    if not found:
        out.print("no workers" + ("" if all_workers else " running (--all: also stopped ones)"))
        return
    table = Table()
    for column in ("worker", "host", "pools", "capacity", "in use", "jobs", "heartbeat", "state"):
        table.add_column(column)
    for view in found:
        beat = view.beat
        color = STATE_COLORS.get(view.state, "white")
        table.add_row(
            beat.id,
            beat.host,
            ",".join(beat.pools),
            amounts(beat.capacity.num_cpus, beat.capacity.memory_mib, beat.capacity.num_gpus),
            in_use(beat),
            jobs_text(beat),
            f"{view.heartbeat_age_s:.0f}s ago",
            f"[{color}]{view.state}[/]",
        )
    out.print(table)


def amounts(cpus: int, memory_mib: int, gpus: int) -> str:
    """``4 cpu 16g 1 gpu`` (GPUs only when there are any)."""
    memory = f"{memory_mib / 1024:.3g}g" if memory_mib >= 1024 else f"{memory_mib}m"
    return f"{cpus} cpu {memory}" + (f" {gpus} gpu" if gpus else "")


def in_use(beat: WorkerHeartbeat) -> str:
    """What the worker's running jobs hold; ``-`` for nothing."""
    if not (beat.cpus_used or beat.memory_used_mib or beat.gpus_used):
        return "-"
    return amounts(beat.cpus_used, beat.memory_used_mib, beat.gpus_used)


def jobs_text(beat: WorkerHeartbeat) -> str:
    """How many jobs run, and the first few (``<wf>.<job>``, oldest first)."""
    if not beat.running:
        return "-"
    first = ", ".join(f"{job.wf}.{job.job}" for job in beat.running[:SHOWN_JOBS])
    more = ", …" if len(beat.running) > SHOWN_JOBS else ""
    return f"{len(beat.running)}: {first}{more}"
