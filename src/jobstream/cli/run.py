"""``jobstream run SPEC``: everything in one process — embedded server, scheduler, worker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import typer

from jobstream.cli.common import (
    Json,
    NatsUrl,
    StateDir,
    capacity_from,
    err,
    fail,
    guarded,
    print_json,
    run_async,
    settings_from,
)
from jobstream.cli.render import ProgressView, print_summary
from jobstream.local import RunOutcome, run_local
from jobstream.model import Resources, WorkflowDef
from jobstream.spec import load_spec
from jobstream.workers.service import WorkerOptions


def unfit_jobs(workflow: WorkflowDef, capacity: Resources) -> list[str]:
    """Names of jobs no local worker of this size could ever run."""
    return [job.name for job in workflow.jobs if not job.resources.fits_in(capacity)]


@guarded
def run(
    spec: Annotated[Path, typer.Argument(help="workflow spec (.yaml, .yml, .json, .json5)")],
    cpus: Annotated[
        int | None, typer.Option(help="CPUs of the local worker [default: all]")
    ] = None,
    memory: Annotated[
        str | None, typer.Option(help="memory of the local worker, e.g. 8g [default: all]")
    ] = None,
    gpus: Annotated[int, typer.Option(help="GPUs of the local worker")] = 0,
    services: Annotated[
        bool | None,
        typer.Option(
            "--services/--no-services",
            help="run scheduler and projector in this process "
            "[default: unless a jobstream server runs here]",
        ),
    ] = None,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Submit a workflow and run it to the end on this machine, with a live progress bar.

    Exit code 0 when every job completed, 1 when any job failed, timed out or was canceled.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    workflow = load_spec(spec)
    capacity = capacity_from(cpus, memory, gpus, float("inf"))
    unfit = unfit_jobs(workflow, capacity)
    if unfit:
        job = next(j for j in workflow.jobs if j.name == unfit[0])
        fail(
            f"{len(unfit)} job(s) need more than this machine offers, e.g. {unfit[0]!r} needs "
            f"{job.resources.hardware_class()} (have {capacity.hardware_class()}); pass "
            "--cpus/--memory/--gpus to oversubscribe, or run `jobstream server` with workers"
        )
    options = WorkerOptions(
        capacity=capacity,
        pools=tuple(sorted({job.pool for job in workflow.jobs} | {settings.pool})),
        lease_s=settings.lease_s,
        log_dir=(settings.state_dir / "logs").resolve(),
    )
    with ProgressView(workflow.name) as view:

        def submitted(wf: str, url: str) -> None:
            err.print(f"workflow {wf}: {len(workflow.jobs)} jobs submitted to {url}")

        outcome: RunOutcome = run_async(
            lambda: run_local(
                settings,
                workflow,
                options,
                services=services,
                on_submitted=submitted,
                on_update=view.update,
            )
        )
    if json_output:
        print_json(msgspec.to_builtins(outcome.summary))
    else:
        print_summary(outcome.summary)
    if not outcome.summary.succeeded:
        raise typer.Exit(1)
