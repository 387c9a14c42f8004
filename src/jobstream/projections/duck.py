"""The DuckDB file: schema, one transaction per batch (rows + checkpoint), queries.

The checkpoint row is the tracking record: it holds the last stream sequence applied and
moves in the same transaction as the rows, so a batch is applied exactly once however
often it is delivered. DuckDB allows one writing process; everything here is blocking
and is called from a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from jobstream.events import JobEvent, WorkflowEvent
from jobstream.projections.kv import JobRecord, WorkflowRecord
from jobstream.projections.tables import READ_MODELS
from jobstream.projections.views import view_ddl
from jobstream.streams.store import Stored

SCHEMA_VERSION = 1
TABLES = (*(model.name for model in READ_MODELS), "checkpoint")


class DuckStore:
    """One DuckDB database holding every read model."""

    def __init__(self, path: Path | str, read_only: bool = False) -> None:
        self.path = str(path)
        self.db = duckdb.connect(self.path, read_only=read_only)
        if read_only:
            return
        for model in READ_MODELS:
            self.db.execute(model.ddl())
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS checkpoint "
            "(id INTEGER PRIMARY KEY, seq BIGINT, event_time TIMESTAMP, schema_version INTEGER)"
        )
        for ddl in view_ddl():
            self.db.execute(ddl)

    def close(self) -> None:
        self.db.close()

    def checkpoint(self) -> int:
        row = self.db.execute("SELECT seq FROM checkpoint WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def begin(self, batch: Sequence[Stored]) -> Pending | None:
        """Fold a batch into every table and move the checkpoint, without committing.

        Events at or below the checkpoint are skipped (redelivery, replay). The caller
        commits (:meth:`Pending.commit`) once the batch's KV records are written.
        """
        checkpoint = self.checkpoint()
        fresh = [s for s in batch if s.seq > checkpoint]
        if not fresh:
            return None
        last = fresh[-1]
        cursor = self.db.cursor()
        cursor.execute("BEGIN TRANSACTION")
        try:
            for model in READ_MODELS:
                rows = model.fold(fresh)
                if rows:
                    cursor.register("staged", model.to_arrow(rows))
                    cursor.execute(model.insert_sql("staged"))
                    cursor.unregister("staged")
            cursor.execute(
                "INSERT OR REPLACE INTO checkpoint VALUES (1, ?, to_timestamp(?)::TIMESTAMP, ?)",
                [last.seq, last.event.at, SCHEMA_VERSION],
            )
            return Pending(cursor, _job_records(cursor, fresh), _workflow_records(cursor, fresh))
        except BaseException:
            cursor.execute("ROLLBACK")
            cursor.close()
            raise

    def apply(self, batch: Sequence[Stored]) -> None:
        """Fold and commit at once (for replays that write no KV records)."""
        pending = self.begin(batch)
        if pending is not None:
            pending.commit()

    def query(self, sql: str) -> pa.Table:
        """Run a query on its own cursor (the writer may run meanwhile)."""
        cursor = self.db.cursor()
        try:
            return cursor.sql(sql).to_arrow_table()
        finally:
            cursor.close()


class Pending:
    """An applied but uncommitted batch, with the KV records it produced."""

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        jobs: list[JobRecord],
        workflows: list[WorkflowRecord],
    ) -> None:
        self.cursor = cursor
        self.jobs = jobs
        self.workflows = workflows

    def commit(self) -> None:
        try:
            self.cursor.execute("COMMIT")
        finally:
            self.cursor.close()

    def rollback(self) -> None:
        try:
            self.cursor.execute("ROLLBACK")
        finally:
            self.cursor.close()


def _job_records(cursor: duckdb.DuckDBPyConnection, batch: Sequence[Stored]) -> list[JobRecord]:
    keys = {(s.event.wf, s.event.job) for s in batch if isinstance(s.event, JobEvent)}
    if not keys:
        return []
    touched = pa.table(
        {"wf": pa.array([k[0] for k in keys]), "job": pa.array([k[1] for k in keys], pa.int32())}
    )
    cursor.register("touched", touched)
    rows = cursor.execute(
        "SELECT j.wf, j.job, j.state, j.attempt, j.worker, epoch(j.updated_at), j.last_seq "
        "FROM jobs j JOIN touched t ON j.wf = t.wf AND j.job = t.job"
    ).fetchall()
    cursor.unregister("touched")
    return [
        JobRecord(
            wf=wf,
            job=job,
            state=state,
            attempt=attempt or 0,
            worker=worker,
            updated_at=float(updated),
            seq=seq,
        )
        for wf, job, state, attempt, worker, updated, seq in rows
    ]


def _workflow_records(
    cursor: duckdb.DuckDBPyConnection, batch: Sequence[Stored]
) -> list[WorkflowRecord]:
    wfs = sorted({s.event.wf for s in batch if isinstance(s.event, WorkflowEvent)})
    if not wfs:
        return []
    counts: dict[str, dict[str, int]] = {wf: {} for wf in wfs}
    for wf, state, n in cursor.execute(
        "SELECT wf, state, count(*) FROM jobs WHERE wf IN (SELECT unnest(?)) GROUP BY ALL",
        [wfs],
    ).fetchall():
        counts[wf][state] = n
    rows = cursor.execute(
        'SELECT wf, name, "user", job_count, epoch(submitted_at), completed_at IS NOT NULL '
        "FROM workflows WHERE wf IN (SELECT unnest(?))",
        [wfs],
    ).fetchall()
    last_seq = max(s.seq for s in batch)
    return [
        WorkflowRecord(
            wf=wf,
            name=name or "",
            user=user or "",
            job_count=job_count or 0,
            submitted_at=float(submitted or 0.0),
            finished=bool(finished),
            counts=counts[wf],
            seq=last_seq,
        )
        for wf, name, user, job_count, submitted, finished in rows
    ]
