"""``jobstream status [WORKFLOW]`` and ``jobstream watch``: jobs per state, from KV."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from jobstream.cli.common import (
    Json,
    NatsUrl,
    StateDir,
    as_submitter,
    fail,
    guarded,
    on_gateway,
    on_server,
    out,
    print_json,
    settings_from,
)
from jobstream.cli.render import ProgressView, counts_text, print_summary
from jobstream.config import Settings
from jobstream.gateway.client import Submitter
from jobstream.projections.records import JobRecord, WorkflowStatus, all_counts
from jobstream.streams.connection import Connection
from jobstream.views.status import follow, latest_workflow, statuses, with_problems

WorkflowArg = Annotated[str | None, typer.Argument(help="workflow id [default: all]")]


@guarded
def status(
    workflow: WorkflowArg = None,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Show how many jobs are in each state (one workflow in detail, or every workflow)."""
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    if as_submitter(settings):  # their own workflows only
        found = on_gateway(settings, Submitter.statuses, workflow)
    else:
        found = on_server(settings, statuses, settings, workflow, name="jobstream-status")
    if workflow and not found:
        fail(f"no workflow {workflow!r} (jobstream status lists them)", 1)
    if json_output:
        data = [s.as_json() for s in found]
        print_json(data[0] if workflow else data)
        return
    if workflow:
        print_summary(found[0])
        return
    table = Table()
    for column in ("workflow", "name", "jobs", "done", "states"):
        table.add_column(column)
    for s in found:
        table.add_row(
            s.wf, s.name, str(s.job_count), str(s.done()), counts_text(all_counts(s.counts))
        )
    out.print(table if found else "no workflows yet")


async def _watch(conn: Connection, settings: Settings, wf: str | None) -> WorkflowStatus:
    wf = wf or await latest_workflow(conn)
    if wf is None:
        fail("no workflows yet", 1)
    view = ProgressView(wf)

    def report_failure(job: JobRecord) -> None:
        if job.state in ("failed", "timed_out"):
            view.note(f"[red]job {job.job} {job.state}[/] (attempt {job.attempt}, {job.worker})")

    with view:
        record = await follow(conn, wf, view.update, report_failure)
    return await with_problems(conn, settings, record)


async def _watch_own(submitter: Submitter, wf: str | None) -> WorkflowStatus:
    with ProgressView(wf or "") as view:
        return await submitter.follow(wf, view.update)


@guarded
def watch(
    workflow: WorkflowArg = None,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Follow a workflow (default: the latest unfinished one) with live counts until it ends."""
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    if as_submitter(settings):  # polled through the submitter service
        summary = on_gateway(settings, _watch_own, workflow)
    else:
        summary = on_server(
            settings, _watch, settings, workflow, embedded=False, name="jobstream-watch"
        )
    if json_output:
        print_json(summary.as_json())
    else:
        print_summary(summary)
    if not summary.succeeded:
        raise typer.Exit(1)
