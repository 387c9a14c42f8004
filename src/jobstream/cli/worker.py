"""``jobstream worker``: pull jobs that fit this worker's hardware and run them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer

from jobstream.cli.common import (
    NatsUrl,
    StateDir,
    capacity_from,
    err,
    guarded,
    parse_duration,
    run_async,
    settings_from,
)
from jobstream.cli.server import stop_on_signal
from jobstream.config import Settings
from jobstream.streams.connection import connect
from jobstream.workers.service import Worker, WorkerOptions


async def work(settings: Settings, options: WorkerOptions) -> None:
    async with connect(settings, embedded=False, name=f"worker-{options.worker_id}") as conn:
        worker = Worker(conn, options)
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_on_signal, tg.cancel_scope)
            await worker.run()
            tg.cancel_scope.cancel()
        err.print(f"worker {worker.id} stopped ({worker.stop_reason}): {worker.jobs_run} jobs run")


@guarded
def worker(
    cpus: Annotated[int | None, typer.Option(help="CPUs to offer [default: all]")] = None,
    memory: Annotated[
        str | None, typer.Option(help="memory to offer, e.g. 8g [default: all]")
    ] = None,
    gpus: Annotated[int, typer.Option(help="GPUs to offer (ids 0..N-1)")] = 0,
    walltime: Annotated[
        str | None, typer.Option(help="lifetime: seconds, HH:MM:SS or PT2H [default: none]")
    ] = None,
    pool: Annotated[
        list[str] | None, typer.Option(help="pool(s) to take work from [default: default]")
    ] = None,
    idle_timeout: Annotated[
        float | None, typer.Option(help="exit after this many idle seconds (0: never)")
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="run jobs here [default: the submitter's directory]")
    ] = None,
    log_dir: Annotated[Path | None, typer.Option(help="stdout/stderr files")] = None,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
) -> None:
    """Run jobs from every hardware class that fits this worker, several at once."""
    settings = settings_from(nats_url=nats_url, state_dir=state_dir, idle_timeout_s=idle_timeout)
    walltime_s = parse_duration(walltime, "--walltime")
    options = WorkerOptions(
        capacity=capacity_from(cpus, memory, gpus, walltime_s),
        pools=tuple(pool or [settings.pool]),
        walltime_s=walltime_s,
        idle_timeout_s=settings.idle_timeout_s,
        lease_s=settings.lease_s,
        log_dir=(log_dir or settings.state_dir / "logs").resolve(),
        workdir=str(workdir.resolve()) if workdir else None,
    )
    err.print(
        f"worker {options.worker_id}: {options.capacity.hardware_class()} pools "
        f"{','.join(options.pools)}"
    )
    run_async(work, settings, options)
