"""``jobstream status [WORKFLOW]``: jobs per state, folded from the event log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

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
from jobstream.cli.render import counts_text, print_summary
from jobstream.config import Settings
from jobstream.progress import StatusBoard
from jobstream.streams.connection import connect
from jobstream.streams.reader import read_until_caught_up
from jobstream.streams.subjects import workflow_filter


async def read_status(settings: Settings, wf: str | None) -> StatusBoard:
    """Fold the log (one workflow, or all) into a status board."""
    board = StatusBoard()
    async with connect(settings, embedded=True, name="jobstream-status") as conn:
        async for stored in read_until_caught_up(conn.js, workflow_filter(wf) if wf else "ev.>"):
            board.apply(stored.event)
    return board


@guarded
def status(
    workflow: Annotated[str | None, typer.Argument(help="workflow id [default: all]")] = None,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Show how many jobs are in each state (one workflow in detail, or every workflow)."""
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    board = run_async(read_status, settings, workflow)
    if workflow and workflow not in board.workflows:
        fail(f"no workflow {workflow!r} in the log (jobstream status lists them)", 1)
    summaries = [s.summary() for s in board.workflows.values()]
    if json_output:
        print_json(summaries[0] if workflow else summaries)
        return
    if workflow:
        print_summary(board.workflows[workflow])
        return
    table = Table()
    for column in ("workflow", "name", "submitted", "jobs", "states"):
        table.add_column(column)
    for s in board.workflows.values():
        when = datetime.fromtimestamp(s.submitted_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(s.wf, s.name, when, str(s.job_count), counts_text(s.counts()))
    out.print(table if board.workflows else "no workflows yet")
