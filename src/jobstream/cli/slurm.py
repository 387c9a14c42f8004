"""``jobstream slurm``: Slurm allocations that run jobstream workers, submitted by hand
(``schedule-nodes``) or for the backlog (``autoalloc``), and their records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from jobstream.cli.common import (
    Json,
    NatsUrl,
    StateDir,
    err,
    fail,
    guarded,
    on_server,
    out,
    print_json,
    settings_from,
)
from jobstream.config import Settings
from jobstream.host.allocations import IDLE_TIMEOUT_S, listed
from jobstream.host.allocations import schedule_nodes as allocate
from jobstream.host.autoalloc import autoalloc as keep_allocating
from jobstream.host.credentials import role_of
from jobstream.slurm.autoalloc import Limits

DEFAULT = Limits()
T = TypeVar("T")


def on_slurm(settings: Settings, func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``func(conn, *args)`` as the admin: allocations are made with the server's
    users file and its Slurm user. A submitter or a compute identity is refused before
    anything is written or submitted."""
    if role_of(settings.creds) != "admin":
        fail(f"`jobstream slurm` is for the server's admin, not a {role_of(settings.creds)}", 2)
    return on_server(settings, func, *args, name="jobstream-slurm")


IdleTimeout = Annotated[
    float, typer.Option(help="a worker without work this many seconds ends its allocation")
]

slurm_app = typer.Typer(help="Run workers as Slurm allocations.", no_args_is_help=True)


@slurm_app.command("schedule-nodes")
@guarded
def schedule_nodes(
    workflow: Annotated[str, typer.Argument(help="workflow id")],
    scheduler: Annotated[
        str, typer.Option("--scheduler", help="a name from the spec's slurm_schedulers")
    ],
    num: Annotated[int, typer.Option("--num", help="allocations to submit")] = 1,
    idle_timeout: IdleTimeout = IDLE_TIMEOUT_S,
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
    made = on_slurm(
        settings, allocate, settings, workflow, scheduler, num, not dry_run, idle_timeout
    )
    if json_output:
        print_json([{f: getattr(a, f) for f in a.__struct_fields__} for a in made])
        return
    for allocation in made:
        job = allocation.slurm_job_id or "not submitted (--dry-run)"
        out.print(f"slurm job {job}: {allocation.script}")


@slurm_app.command("autoalloc")
@guarded
def autoalloc(
    workflow: Annotated[str, typer.Argument(help="workflow id")],
    scheduler: Annotated[
        list[str] | None,
        typer.Option(
            "--scheduler", help="a name from the spec's slurm_schedulers (repeat; default: all)"
        ),
    ] = None,
    max_queued: Annotated[
        int | None,
        typer.Option(help="allocations waiting in Slurm's queue at once [setting: 2]"),
    ] = None,
    max_nodes: Annotated[
        int | None,
        typer.Option(help="nodes of the workflow's open allocations, queued or running [4]"),
    ] = None,
    max_allocations: Annotated[
        int | None, typer.Option(help="open allocations at once (default: max-nodes decides)")
    ] = None,
    backoff: Annotated[
        float, typer.Option(help="seconds to wait after a failed sbatch, doubled per failure")
    ] = DEFAULT.backoff_s,
    interval: Annotated[
        float | None,
        typer.Option(help="seconds between looks at the backlog and Slurm's queue [5]"),
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(help="a worker without work this many seconds ends its allocation [60]"),
    ] = None,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Submit allocations while the workflow's jobs wait, until it is finished.

    Each interval: one look at the WORK class consumers (jobs no worker has fetched yet,
    per hardware class) and one squeue. A class goes to the smallest scheduler that can
    run its jobs; an allocation is submitted while jobs wait for it, within the limits.
    Its workers give it back once idle. Unset limits come from the settings
    (autoalloc_max_queued, autoalloc_max_nodes, slurm_poll_s, autoalloc_idle_timeout_s).
    Run it on the server's host, or leave it to the server: a spec's schedule_nodes
    action triggered on_jobs_ready does the same.
    """
    settings = settings_from(
        nats_url=nats_url,
        state_dir=state_dir,
        autoalloc_max_queued=max_queued,
        autoalloc_max_nodes=max_nodes,
        slurm_poll_s=interval,
        autoalloc_idle_timeout_s=idle_timeout,
    )
    limits = Limits(
        max_queued=settings.autoalloc_max_queued,
        max_nodes=settings.autoalloc_max_nodes,
        max_allocations=max_allocations,
        backoff_s=backoff,
        max_backoff_s=max(backoff, DEFAULT.max_backoff_s),
    )
    submitted = on_slurm(
        settings, keep_allocating, settings, workflow, scheduler or [], limits, err.print
    )  # fmt: skip
    if json_output:
        print_json({"workflow": workflow, "allocations_submitted": submitted})
        return
    out.print(f"workflow {workflow} is finished: {submitted} allocations submitted")


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
    rows = on_slurm(settings, listed, settings, workflow)
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
