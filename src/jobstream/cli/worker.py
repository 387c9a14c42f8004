"""``jobstream worker``: pull jobs that fit this worker's hardware and run them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from jobstream.cli.common import (
    NatsUrl,
    StateDir,
    err,
    guarded,
    parse_duration,
    parse_memory,
    run_main,
    settings_from,
)
from jobstream.host.services import work
from jobstream.workers.capacity import local_capacity
from jobstream.workers.context import WorkerOptions


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
    options = WorkerOptions.from_settings(
        settings,
        local_capacity(cpus, parse_memory(memory, "--memory"), gpus, walltime_s),
        pools=pool or (),
        walltime_s=walltime_s,
        log_dir=log_dir,
        workdir=workdir,
        slurm_job_id=os.environ.get("SLURM_JOB_ID", ""),  # inside an allocation
    )
    err.print(
        f"worker {options.worker_id}: {options.capacity.hardware_class()} pools "
        f"{','.join(options.pools)}"
    )
    run_main(work, settings, options, err.print)
