"""``jobstream slurm schedule-nodes``: Slurm allocations that run jobstream workers."""

from __future__ import annotations

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
from jobstream.host.allocations import IDLE_TIMEOUT_S, listed
from jobstream.host.allocations import schedule_nodes as allocate

slurm_app = typer.Typer(help="Run workers as Slurm allocations.", no_args_is_help=True)


@slurm_app.command("schedule-nodes")
@guarded
def schedule_nodes(
    workflow: Annotated[str, typer.Argument(help="workflow id")],
    scheduler: Annotated[
        str, typer.Option("--scheduler", help="a name from the spec's slurm_schedulers")
    ],
    num: Annotated[int, typer.Option("--num", help="allocations to submit")] = 1,
    idle_timeout: Annotated[
        float,
        typer.Option(help="a worker without work this many seconds ends its allocation"),
    ] = IDLE_TIMEOUT_S,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="write the scripts, submit nothing")
    ] = False,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Submit allocations (sbatch) that each start a jobstream worker per node.

    The worker offers what Slurm allocated (CPUs, memory, GPUs) for the scheduler's
    walltime, logged in with compute credentials made for that allocation alone
    (STATE_DIR/slurm/WORKFLOW-TOKEN/worker.json, mode 0600). Run it on the server's host.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    made = on_server(
        settings,
        allocate,
        settings,
        workflow,
        scheduler,
        num,
        not dry_run,
        idle_timeout,
        name="jobstream-slurm",
    )
    if json_output:
        print_json([{f: getattr(a, f) for f in a.__struct_fields__} for a in made])
        return
    for allocation in made:
        job = allocation.slurm_job_id or "not submitted (--dry-run)"
        out.print(f"slurm job {job}: {allocation.script}")


@slurm_app.command("allocations")
@guarded
def allocations(
    workflow: Annotated[str | None, typer.Argument(help="only this workflow's")] = None,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """List Slurm allocations: job id, state, nodes, times, workers and attempts run in it.

    From the read models (the view slurm_allocations): attempts join it through
    workers.slurm_job_id.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    rows = on_server(settings, listed, settings, workflow, name="jobstream-slurm")
    if json_output:
        print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("allocation", "slurm job", "workflow", "state", "nodes", "workers", "attempts"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["allocation"]), str(row["slurm_job_id"]), str(row["wf"] or ""),
            str(row["state"]), str(row["nodes_list"] or row["nodes"]), str(row["workers"]),
            str(row["attempts"]),
        )  # fmt: skip
    out.print(table)
