"""``jobstream submit SPEC``: validate, expand and durably submit a workflow to a server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

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
from jobstream.cli.render import ProgressView, print_summary
from jobstream.config import Settings
from jobstream.gateway.client import Submitter
from jobstream.model import WorkflowDef
from jobstream.ops.submit import submit_workflow
from jobstream.projections.records import WorkflowStatus
from jobstream.spec import load_spec
from jobstream.streams.connection import Connection
from jobstream.views.status import follow, with_problems


async def _submit(
    conn: Connection, settings: Settings, workflow: WorkflowDef, wait: bool, view: ProgressView
) -> tuple[str, WorkflowStatus | None]:
    wf = await submit_workflow(conn, workflow, workdir=os.getcwd())
    if not wait:
        return wf, None
    err.print(f"workflow {wf} submitted; waiting for it to finish")
    return wf, await with_problems(conn, settings, await follow(conn, wf, view.update))


async def _submit_own(
    submitter: Submitter, workflow: WorkflowDef, wait: bool, view: ProgressView
) -> tuple[str, WorkflowStatus | None]:
    wf = await submitter.submit(workflow, os.getcwd())
    if not wait:
        return wf, None
    err.print(f"workflow {wf} submitted; waiting for it to finish")
    return wf, await submitter.follow(wf, view.update)


@guarded
def submit(
    spec: Annotated[Path, typer.Argument(help="workflow spec (.yaml, .yml, .json, .json5)")],
    wait: Annotated[bool, typer.Option(help="wait for the workflow to finish")] = False,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Submit a workflow to a running server; prints the workflow id.

    With --wait, shows progress and exits 1 when any job did not complete.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    workflow = load_spec(spec, max_jobs=settings.max_jobs)
    if as_submitter(settings):
        with ProgressView(workflow.name) as view:
            wf, summary = on_gateway(settings, _submit_own, workflow, wait, view)
    else:
        with ProgressView(workflow.name) as view:
            wf, summary = on_server(
                settings,
                _submit,
                settings,
                workflow,
                wait,
                view,
                embedded=False,
                name="jobstream-submit",
            )
    if json_output:
        print_json(summary.as_json() if summary else {"workflow": wf, "jobs": len(workflow.jobs)})
    elif summary is not None:
        print_summary(summary)
    else:
        out.print(wf)
    if summary is not None and not summary.succeeded:
        raise typer.Exit(1)
