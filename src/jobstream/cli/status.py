"""``jobstream status [WORKFLOW]`` and ``jobstream watch``: jobs per state, from KV."""

from __future__ import annotations

from typing import Annotated

import msgspec
import typer
from rich.table import Table

from jobstream.access import follow, summaries
from jobstream.cli.common import (
    Json,
    NatsUrl,
    StateDir,
    fail,
    guarded,
    out,
    print_json,
    run_async,
    settings_from,
)
from jobstream.cli.render import ProgressView, counts_text, print_summary
from jobstream.config import Settings
from jobstream.projections.kv import JobRecord, workflow_records
from jobstream.streams.connection import connect
from jobstream.summary import Summary


async def read_status(settings: Settings, wf: str | None) -> list[Summary]:
    async with connect(settings, embedded=True, name="jobstream-status") as conn:
        return await summaries(conn, settings, wf)


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
    found = run_async(read_status, settings, workflow)
    if workflow and not found:
        fail(f"no workflow {workflow!r} (jobstream status lists them)", 1)
    if json_output:
        data = [msgspec.to_builtins(s) for s in found]
        print_json(data[0] if workflow else data)
        return
    if workflow:
        print_summary(found[0])
        return
    table = Table()
    for column in ("workflow", "name", "jobs", "done", "states"):
        table.add_column(column)
    for s in found:
        table.add_row(s.workflow, s.name, str(s.jobs), str(s.done()), counts_text(s.counts))
    out.print(table if found else "no workflows yet")


async def watch_until_done(settings: Settings, wf: str | None) -> Summary:
    async with connect(settings, embedded=False, name="jobstream-watch") as conn:
        if wf is None:
            records = await workflow_records(conn.js)
            unfinished = [r for r in records if not r.finished]
            if not records:
                fail("no workflows yet", 1)
            wf = (unfinished or records)[-1].wf
        view = ProgressView(wf)

        def report_failure(job: JobRecord) -> None:
            if job.state in ("failed", "timed_out"):
                view.note(
                    f"[red]job {job.job} {job.state}[/] (attempt {job.attempt}, {job.worker})"
                )

        with view:
            record = await follow(conn, wf, view.update, report_failure)
        return (await summaries(conn, settings, record.wf))[0]


@guarded
def watch(
    workflow: WorkflowArg = None,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Follow a workflow (default: the latest unfinished one) with live counts until it ends."""
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    summary = run_async(watch_until_done, settings, workflow)
    if json_output:
        print_json(msgspec.to_builtins(summary))
    else:
        print_summary(summary)
    if not summary.succeeded:
        raise typer.Exit(1)
