"""``jobstream events WORKFLOW [JOB]``: the exact recorded history, from the log itself."""

from __future__ import annotations

import json
from datetime import datetime
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
    settings_from,
)
from jobstream.errors import JobstreamError
from jobstream.ops.jobs import resolve_job
from jobstream.streams.connection import Connection
from jobstream.views.history import event_row, history


async def _show(conn: Connection, wf: str, job: str | None, follow: bool, as_json: bool) -> int:
    index = await resolve_job(conn, wf, job) if job else None
    count = 0
    async for events in history(conn, wf, index, follow=follow):
        rows = [event_row(s) for s in events]
        count += len(rows)
        if as_json:
            for row in rows:
                out.out(json.dumps(row, default=str), highlight=False)
        elif rows:
            out.print(_table(rows))
    return count


def _table(rows: list[dict[str, object]]) -> Table:
    table = Table(box=None, show_header=True, pad_edge=False)
    for column in ("seq", "time", "type", "actor", "details"):
        table.add_column(column, overflow="fold")
    for row in rows:
        at = row["at"]
        when = (
            datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]
            if isinstance(at, float)
            else "-"
        )
        details = json.dumps(row["payload"], default=str, separators=(",", ":"))
        table.add_row(
            str(row["seq"]), when, str(row["type"]), str(row["actor"] or ""), details[:300]
        )
    return table


@guarded
def events(
    workflow: Annotated[str, typer.Argument(help="workflow id")],
    job: Annotated[str | None, typer.Argument(help="job index or name [default: all]")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new events")
    ] = False,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Print the exact event history of a workflow or one job (sequence, time, type, actor).

    --json prints one JSON object per line.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    count = on_server(
        settings,
        _show,
        workflow,
        job,
        follow,
        json_output,
        embedded=not follow,
        name="jobstream-events",
    )
    if count == 0:
        raise JobstreamError(f"no events for workflow {workflow}{' job ' + job if job else ''}")
