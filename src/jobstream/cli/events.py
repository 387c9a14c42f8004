"""``jobstream events WORKFLOW [JOB]``: the exact recorded history, from the log itself."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import msgspec
import typer
from rich.table import Table

from jobstream.cli.common import (
    Json,
    NatsUrl,
    StateDir,
    guarded,
    out,
    run_async,
    settings_from,
)
from jobstream.config import Settings
from jobstream.errors import JobstreamError
from jobstream.events import JobSubmitted
from jobstream.streams.connection import Connection, connect
from jobstream.streams.reader import read_batches, read_until_caught_up
from jobstream.streams.store import Stored
from jobstream.streams.subjects import job_subject, workflow_filter

COMMON = ("type", "wf", "job", "at", "actor")


def event_row(stored: Stored) -> dict[str, object]:
    """One event as printed: sequence, time, type, actor, and the rest of its payload."""
    payload = msgspec.to_builtins(stored.event)
    return {
        "seq": stored.seq,
        "at": stored.event.at,
        "type": type(stored.event).__name__,
        "subject": stored.subject,
        "actor": stored.event.actor,
        "payload": {k: v for k, v in payload.items() if k not in COMMON},
    }


async def resolve_job(conn: Connection, wf: str, job: str) -> int:
    """A job index, given an index or a job name."""
    if job.isdigit():
        return int(job)
    async for stored in read_until_caught_up(conn.js, f"ev.{wf}.job.*"):
        if isinstance(stored.event, JobSubmitted) and stored.event.spec.name == job:
            return stored.event.job
    raise JobstreamError(f"workflow {wf} has no job named {job!r}")


async def show(settings: Settings, wf: str, job: str | None, follow: bool, as_json: bool) -> int:
    async with connect(settings, embedded=not follow, name="jobstream-events") as conn:
        subject = job_subject(wf, await resolve_job(conn, wf, job)) if job else workflow_filter(wf)
        count = 0
        async for batch in read_batches(conn.js, subject, follow=follow):
            rows = [event_row(s) for s in batch.events]
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
        assert isinstance(at, float)
        when = datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]
        details = json.dumps(row["payload"], default=str, separators=(",", ":"))
        table.add_row(str(row["seq"]), when, str(row["type"]), str(row["actor"]), details[:300])
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
    count = run_async(show, settings, workflow, job, follow, json_output)
    if count == 0:
        raise JobstreamError(f"no events for workflow {workflow}{' job ' + job if job else ''}")
