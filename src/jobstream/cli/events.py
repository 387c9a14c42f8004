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
    as_submitter,
    guarded,
    on_gateway,
    on_server,
    out,
    settings_from,
)
from jobstream.errors import ConfigError, JobstreamError
from jobstream.gateway.client import Submitter
from jobstream.ops.jobs import resolve_job
from jobstream.streams.connection import Connection
from jobstream.views.history import event_row, history


async def _show(conn: Connection, wf: str, job: str | None, follow: bool, as_json: bool) -> int:
    index = await resolve_job(conn, wf, job) if job else None
    count = 0
    async for events in history(conn, wf, index, follow=follow):
        count += _print([event_row(s) for s in events], as_json)
    return count


async def _show_own(submitter: Submitter, wf: str, job: str | None, as_json: bool) -> int:
    if job is not None and not job.isdigit():
        raise ConfigError(f"job {job!r}: give its index (names are looked up by admins only)")
    count = 0
    async for rows in submitter.events(wf, int(job) if job is not None else None):
        count += _print(rows, as_json)
    return count


def _print(rows: list[dict[str, object]], as_json: bool) -> int:
    if as_json:
        for row in rows:
            out.out(json.dumps(row, default=str), highlight=False)
    elif rows:
        out.print(_table(rows))
    return len(rows)


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
    if as_submitter(settings) and follow:
        raise ConfigError("--follow: not open to submitters yet")
    count = (
        on_gateway(settings, _show_own, workflow, job, json_output)
        if as_submitter(settings)
        else on_server(
            settings,
            _show,
            workflow,
            job,
            follow,
            json_output,
            embedded=not follow,
            name="jobstream-events",
        )
    )
    if count == 0:
        raise JobstreamError(f"no events for workflow {workflow}{' job ' + job if job else ''}")
