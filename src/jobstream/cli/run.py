"""``jobstream run SPEC``: everything in one process — embedded server, scheduler, worker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobstream.cli.common import (
    Json,
    NatsUrl,
    StateDir,
    err,
    guarded,
    parse_memory,
    print_json,
    run_main,
    settings_from,
)
from jobstream.cli.render import ProgressView, print_summary
from jobstream.host.local import Hooks, local_worker, run_local
from jobstream.ops.check import require_fit
from jobstream.spec import load_spec
from jobstream.workers.capacity import local_capacity


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
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="also run what earlier runs here left unfinished (else refused)"
        ),
    ] = False,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Submit a workflow and run it to the end on this machine, with a live progress bar.

    Exit code 0 when every job completed, 1 when any job failed, timed out or was canceled.
    Workflows an earlier run left unfinished here (interrupted) would run on the same
    worker: the run refuses to start, naming them, unless --resume.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    workflow = load_spec(spec, max_jobs=settings.max_jobs)
    capacity = local_capacity(cpus, parse_memory(memory, "--memory"), gpus)
    require_fit(workflow, capacity)
    options = local_worker(settings, workflow, capacity)
    with ProgressView(workflow.name) as view:

        def submitted(wf: str, url: str) -> None:
            err.print(f"workflow {wf}: {len(workflow.jobs)} jobs submitted to {url}")

        def resumed(left: str) -> None:
            err.print(f"also running what earlier runs left unfinished: {left}")

        hooks = Hooks(on_submitted=submitted, on_update=view.update, on_resumed=resumed)
        outcome = run_main(
            lambda: run_local(
                settings, workflow, options, services=services, hooks=hooks, resume=resume
            )
        )
    if json_output:
        print_json(outcome.summary.as_json())
    else:
        print_summary(outcome.summary)
    if not outcome.summary.succeeded:
        raise typer.Exit(1)
