"""``jobstream cancel``: stop a workflow or some of its jobs."""

from __future__ import annotations

from typing import Annotated

import msgspec
import typer

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
from jobstream.config import Settings
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
