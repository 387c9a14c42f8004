"""``jobstream projector``, ``sql``, ``rebuild``: the DuckDB read models and SQL on them."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import anyio
import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.table import Table

from jobstream.access import db_path, run_sql
from jobstream.cli.common import (
    NatsUrl,
    StateDir,
    err,
    guarded,
    out,
    print_json,
    run_async,
    settings_from,
)
from jobstream.cli.server import stop_on_signal
from jobstream.config import Settings
from jobstream.errors import ConfigError
from jobstream.projections.duck import DuckStore, kv_checkpoint_of
from jobstream.projections.query import projector_available, remote_rebuild
from jobstream.projections.service import Projector, replay_into, replay_store
from jobstream.streams.connection import Connection, connect
from jobstream.supervise import supervised


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    parquet = "parquet"


async def project(settings: Settings) -> None:
    async with (
        connect(settings, embedded=False, name="jobstream-projector") as conn,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(stop_on_signal, tg.cancel_scope)
        await tg.start(supervised, "projector", lambda: Projector(conn, db_path(settings)))
        err.print(f"projector writing {db_path(settings)}; answering `jobstream sql`")


@guarded
def projector(nats_url: NatsUrl = None, state_dir: StateDir = None) -> None:
    """Fold the event log into DuckDB tables and the JOBS bucket; answer SQL queries."""
    run_async(project, settings_from(nats_url=nats_url, state_dir=state_dir))


def parse_as_of(value: str) -> tuple[int | None, float | None]:
    """A stream sequence (integer) or a time (ISO 8601, local time unless it has a zone)."""
    if value.isdigit():
        return int(value), None
    try:
        return None, datetime.fromisoformat(value).timestamp()
    except ValueError as exc:
        raise ConfigError(
            f"--as-of {value!r}: give a stream sequence (e.g. 1200) or a time "
            "(e.g. 2026-11-25T12:30:00)"
        ) from exc


async def as_of_query(
    conn: Connection, sql: str, upto: tuple[int | None, float | None]
) -> pa.Table:
    """Replay the log up to a point into a throw-away database and ask it."""
    store = await anyio.to_thread.run_sync(DuckStore, ":memory:")
    try:
        await replay_store(conn, store, upto_seq=upto[0], upto_time=upto[1])
        return await anyio.to_thread.run_sync(store.query, sql)
    finally:
        store.close()


async def answer(settings: Settings, sql: str, as_of: str | None) -> pa.Table:
    upto = parse_as_of(as_of) if as_of else None
    async with connect(settings, embedded=True, name="jobstream-sql") as conn:
        if upto is not None:
            return await as_of_query(conn, sql, upto)
        return await run_sql(conn, settings, sql)


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

    Views: state_counts, failed_jobs, runtime_percentiles, worker_utilization.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    render(run_async(answer, settings, query, as_of), format, output)


async def rebuild_models(settings: Settings) -> dict[str, object]:
    async with connect(settings, embedded=True, name="jobstream-rebuild") as conn:
        if await projector_available(conn.nc):
            return await remote_rebuild(conn.nc)
        path = db_path(settings)
        fresh = path.with_suffix(".rebuild")
        began = time.monotonic()
        kv_seq = await anyio.to_thread.run_sync(kv_checkpoint_of, path)
        events = await replay_into(conn, fresh, kv_seq=kv_seq)
        os.replace(fresh, path)
        return {"events": events, "seconds": round(time.monotonic() - began, 3), "path": str(path)}


@guarded
def rebuild(
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Replay the whole event log into a fresh DuckDB file and swap it in."""
    result = run_async(rebuild_models, settings_from(nats_url=nats_url, state_dir=state_dir))
    if json_output:
        print_json(result)
        return
    events, seconds = result["events"], result["seconds"]
    assert isinstance(events, int) and isinstance(seconds, float | int)
    rate = events / seconds if seconds else 0.0
    out.print(f"rebuilt {result['path']} from {events} events in {seconds:.2f} s ({rate:,.0f}/s)")
