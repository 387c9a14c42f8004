"""``jobstream cancel``, ``restart`` and ``explain``: stop jobs, run them again, and say
why a job is not running."""

from __future__ import annotations

from typing import Annotated

import msgspec
import typer

from jobstream.access import run_sql
from jobstream.cancel import CancelResult, cancel_jobs
from jobstream.cli.common import (
    Json,
    NatsUrl,
    StateDir,
    guarded,
    out,
    print_json,
    run_async,
    settings_from,
)
from jobstream.cli.events import resolve_job
from jobstream.config import Settings
from jobstream.errors import ConfigError, JobstreamError
from jobstream.explain import explain_job
from jobstream.model import Resources
from jobstream.restart import restart_failed
from jobstream.streams.connection import connect
from jobstream.submit import current_user


async def do_cancel(
    settings: Settings, wf: str, jobs: list[int] | None, reason: str
) -> CancelResult:
    async with connect(settings, embedded=True, name="jobstream-cancel") as conn:
        return await cancel_jobs(conn, wf, jobs, reason=reason, actor=f"user:{current_user()}")


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
    result = run_async(do_cancel, settings, workflow, jobs or None, reason)
    if json_output:
        print_json(msgspec.to_builtins(result))
        return
    out.print(
        f"workflow {workflow}: {len(result.canceled)} job(s) canceled, "
        f"{len(result.already_finished)} had already finished"
    )


async def do_explain(settings: Settings, wf: str, job: str) -> list[str]:
    async with connect(settings, embedded=True, name="jobstream-explain") as conn:
        index = await resolve_job(conn, wf, job)
        try:
            rows = (await run_sql(conn, settings, LIVE_WORKERS)).to_pylist()
            workers: list[Resources] | None = [Resources(**row) for row in rows]
        except JobstreamError:
            workers = None  # no read models: say nothing about workers
        return await explain_job(conn, wf, index, workers)


LIVE_WORKERS = (
    "SELECT num_cpus, memory_mib, num_gpus, 1 AS num_nodes, "
    "CAST(least(walltime_s, 1e9) AS BIGINT) AS runtime_s FROM workers WHERE stopped_at IS NULL"
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
    for line in run_async(do_explain, settings, workflow, job):
        out.print(line)


async def do_restart(settings: Settings, wf: str) -> list[int]:
    async with connect(settings, embedded=True, name="jobstream-restart") as conn:
        return await restart_failed(conn, wf, actor=f"user:{current_user()}")


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
    jobs = run_async(do_restart, settings, workflow)
    if json_output:
        print_json({"workflow": workflow, "restarted": jobs})
    else:
        out.print(f"workflow {workflow}: {len(jobs)} job(s) restarted")
