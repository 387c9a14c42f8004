"""``jobstream projector``, ``sql``, ``rebuild``: the DuckDB read models and SQL on them."""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.table import Table

from jobstream.cli.common import (
    NatsUrl,
    StateDir,
    as_submitter,
    err,
    guarded,
    on_gateway,
    on_server,
    out,
    print_json,
    run_main,
    settings_from,
)
from jobstream.errors import ConfigError
from jobstream.gateway.client import Submitter
from jobstream.host.services import project
from jobstream.ops.rebuild import archive_workflows, rebuild_models
from jobstream.views.sql import answer


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    parquet = "parquet"


@guarded
def projector(nats_url: NatsUrl = None, state_dir: StateDir = None) -> None:
    """Fold the event log into DuckDB tables and the JOBS bucket; answer SQL queries."""
    run_main(project, settings_from(nats_url=nats_url, state_dir=state_dir), err.print)


def render(table: pa.Table, fmt: Format, output: Path | None) -> None:
    if fmt is Format.parquet:
        if output is None:
            raise ConfigError("--format parquet needs --output FILE")
        pq.write_table(table, output)
        err.print(f"{table.num_rows} rows written to {output}")
        return
    if fmt is Format.json:
        text = json.dumps(table.to_pylist(), default=str, indent=2)
    elif fmt is Format.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(table.column_names)
        writer.writerows([list(row.values()) for row in table.to_pylist()])
        text = buffer.getvalue()
    else:
        rich_table = Table()
        for name in table.column_names:
            rich_table.add_column(name)
        for row in table.to_pylist():
            rich_table.add_row(*("" if v is None else str(v) for v in row.values()))
        if output is None:
            out.print(rich_table)
            return
        text = str(rich_table)
    if output is None:
        out.out(text, end="" if text.endswith("\n") else "\n", highlight=False)
    else:
        output.write_text(text)


@guarded
def sql(
    query: Annotated[
        str,
        typer.Argument(
            help="SQL over workflows, jobs, events, attempts, "
            "files, user_data, workers and the views"
        ),
    ],
    format: Annotated[Format, typer.Option("--format", "-f", help="output format")] = Format.table,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file")] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="answer from the state at a stream sequence or time (replays the log)"),
    ] = None,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
) -> None:
    """Query the read models with DuckDB SQL.

    Views: state_counts, failed_jobs, runtime_percentiles, worker_utilization,
    slurm_allocations.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    if as_submitter(settings):  # their own workflows' rows only
        if as_of is not None:
            raise ConfigError("--as-of: not open to submitters (it replays the whole log)")
        render(on_gateway(settings, Submitter.sql, query), format, output)
        return
    render(
        on_server(settings, answer, settings, query, as_of, name="jobstream-sql"), format, output
    )


@guarded
def rebuild(
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Replay the whole event log into a fresh DuckDB file and swap it in."""
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    result = on_server(settings, rebuild_models, settings, name="jobstream-rebuild")
    if json_output:
        print_json(result)
        return
    events, seconds = result["events"], result["seconds"]
    assert isinstance(events, int) and isinstance(seconds, float | int)
    rate = events / seconds if seconds else 0.0
    out.print(f"rebuilt {result['path']} from {events} events in {seconds:.2f} s ({rate:,.0f}/s)")


@guarded
def archive(
    workflows: Annotated[list[str], typer.Argument(help="finished workflow ids")],
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Archive finished workflows now, without waiting for the retention_s setting.

    Their events move to Parquet in the object store ARCHIVE and out of EVENTS; `events`,
    `sql`, `--as-of` and `rebuild` still read them. Needs a running projector.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    results = on_server(settings, archive_workflows, workflows, name="jobstream-archive")
    if json_output:
        print_json(results)
        return
    for result in results:
        out.print(
            f"archived {result['wf']}: {result['events']} events, {result['bytes']} bytes "
            f"in {result['seconds']} s"
        )
