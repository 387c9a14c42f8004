"""``jobstream cancel``, ``restart`` and ``explain``: stop jobs, run them again, and say
why a job is not running."""

from __future__ import annotations

import functools
from typing import Annotated

import msgspec
import typer

from jobstream.cli.common import (
    Json,
    NatsUrl,
    StateDir,
    as_submitter,
    err,
    guarded,
    on_gateway,
    on_server,
    out,
    print_json,
    settings_from,
)
from jobstream.errors import ConfigError
from jobstream.gateway.client import Submitter
from jobstream.ops.cancel import cancel_jobs
from jobstream.ops.explain import explain_job
from jobstream.ops.restart import restart_failed
from jobstream.projections.query import projector_available
from jobstream.streams.connection import Connection


@guarded
def cancel(
    workflow: Annotated[str, typer.Argument(help="workflow id")],
    jobs: Annotated[list[int] | None, typer.Argument(help="job indexes [default: all]")] = None,
    reason: Annotated[str, typer.Option(help="recorded in each JobCanceled")] = "canceled by user",
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Cancel a workflow (or some jobs): queued jobs never start, running ones are terminated.

    Jobs that depend on canceled ones are canceled too (unless they keep waiting by
    cancel_on_blocking_job_failure: false).
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    if as_submitter(settings):
        result = on_gateway(settings, Submitter.cancel, workflow, jobs or None, reason)
    else:
        cancel_for = functools.partial(cancel_jobs, reason=reason)
        result = on_server(settings, cancel_for, workflow, jobs or None, name="jobstream-cancel")
    if json_output:
        print_json(msgspec.to_builtins(result))
        return
    out.print(
        f"workflow {workflow}: {len(result.canceled)} job(s) canceled, "
        f"{len(result.already_finished)} had already finished"
    )


@guarded
def explain(
    workflow: Annotated[str, typer.Argument(help="workflow id")],
    job: Annotated[str, typer.Argument(help="job index or name")],
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
) -> None:
    """Say why a job is not running: dependencies, missing worker capacity, its lease."""
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    if as_submitter(settings):
        lines = on_gateway(settings, Submitter.explain, workflow, job)
    else:
        lines = on_server(settings, explain_job, settings, workflow, job, name="jobstream-explain")
    for line in lines:
        out.print(line)


@guarded
def restart(
    workflow: Annotated[str, typer.Argument(help="workflow id")],
    failed: Annotated[
        bool, typer.Option("--failed", help="restart failed, timed-out and canceled jobs")
    ] = False,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Run a workflow's failed, timed-out and canceled jobs again, with their dependents.

    Earlier attempts stay in each job's history; follow with `jobstream watch WORKFLOW`.
    """
    if not failed:
        raise ConfigError("say what to restart: --failed")
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    if as_submitter(settings):  # the server that answers is the one that runs them
        jobs, served = on_gateway(settings, Submitter.restart, workflow), True
    else:
        jobs, served = on_server(settings, _restart, workflow, name="jobstream-restart")
    if json_output:
        print_json({"workflow": workflow, "restarted": jobs, "served": served})
    else:
        out.print(f"workflow {workflow}: {len(jobs)} job(s) restarted")
    if jobs and not served:
        err.print(
            "[yellow]no jobstream server answers here: nothing runs them until one does "
            "(`jobstream server` and workers, or `jobstream run --resume SPEC` here)[/]"
        )


async def _restart(conn: Connection, wf: str) -> tuple[list[int], bool]:
    """The jobs restarted, and whether a server (scheduler and projector) is there to
    run them."""
    return await restart_failed(conn, wf), await projector_available(conn.nc)
