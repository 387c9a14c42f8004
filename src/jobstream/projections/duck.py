"""The DuckDB file: schema, one transaction per batch (rows + checkpoint), queries.

The checkpoint row is the tracking record: it holds the last stream sequence applied and
moves in the same transaction as the rows, so a batch is applied exactly once however
often it is delivered. DuckDB allows one writing process; everything here is blocking
and is called from a worker thread.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from jobstream.codec import VERSION_HEADER
from jobstream.projections.kv import JobRecord, WorkflowRecord
from jobstream.projections.model import EVENT_STRUCT_JSON, ts
from jobstream.projections.tables import READ_MODELS
from jobstream.projections.views import view_ddl
from jobstream.streams.reader import RawBatch

SCHEMA_VERSION = 1
TABLES = (*(model.name for model in READ_MODELS), "checkpoint")


class DuckStore:
    """One DuckDB database holding every read model."""

    def __init__(self, path: Path | str, read_only: bool = False) -> None:
        self.path = str(path)
        # One thread: batches are small and frequent, and the two cores here are shared
        # with the server, the scheduler and the jobs; more threads only add hand-offs.
        self.db = duckdb.connect(self.path, read_only=read_only, config={"threads": 1})
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

    def begin(self, raw: RawBatch) -> Pending | None:
        """Fold a batch into every table and move the checkpoint, without committing.

        Events at or below the checkpoint are skipped (redelivery, replay). The caller
        commits (:meth:`Pending.commit`) once the batch's KV records are written.
        """
        checkpoint = self.checkpoint()
        keep = [i for i, seq in enumerate(raw.seqs) if seq > checkpoint]
        if not keep:
            return None
        cursor = self.db.cursor()
        cursor.register("staged", _staged(raw, keep))
        cursor.execute("BEGIN TRANSACTION")
        try:
            cursor.execute(
                "CREATE OR REPLACE TEMP TABLE batch AS SELECT seq, subject, version, payload, "
                f"json_transform(payload, '{EVENT_STRUCT_JSON}') AS e "
                "FROM staged WHERE json_valid(payload) ORDER BY seq"
            )
            present = {
                row[0] for row in cursor.execute("SELECT DISTINCT e.type FROM batch").fetchall()
            }
            for model in READ_MODELS:
                if not model.reads or model.reads & present:
                    cursor.execute(model.insert_sql())
            cursor.execute(
                "INSERT OR REPLACE INTO checkpoint "
                f"SELECT 1, max(seq), arg_max({ts()}, seq), {SCHEMA_VERSION} FROM batch"
            )
            cursor.execute(
                "UPDATE checkpoint SET seq = ? WHERE id = 1", [raw.seqs[keep[-1]]]
            )  # malformed events at the end of a batch still count as applied
            return Pending(cursor, _job_records(cursor), _workflow_records(cursor))
        except BaseException:
            cursor.execute("ROLLBACK")
            cursor.close()
            raise

    def apply(self, raw: RawBatch) -> None:
        """Fold and commit at once (for replays that write no KV records)."""
        pending = self.begin(raw)
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


def _staged(raw: RawBatch, keep: list[int]) -> pa.Table:
    versions = [int((raw.headers[i] or {}).get(VERSION_HEADER, 0) or 0) for i in keep]
    return pa.table(
        {
            "seq": pa.array([raw.seqs[i] for i in keep], pa.int64()),
            "subject": pa.array([raw.subjects[i] for i in keep], pa.string()),
            "version": pa.array(versions, pa.int32()),
            "payload": pa.array([raw.payloads[i] for i in keep], pa.string()),
        }
    )


def _job_records(cursor: duckdb.DuckDBPyConnection) -> list[JobRecord]:
    rows = cursor.execute(
        "SELECT j.wf, j.job, j.state, j.attempt, j.worker, epoch(j.updated_at), j.last_seq "
        "FROM jobs j JOIN (SELECT DISTINCT e.wf AS wf, e.job AS job FROM batch "
        "WHERE e.job IS NOT NULL) t ON j.wf = t.wf AND j.job = t.job"
    ).fetchall()
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


def _workflow_records(cursor: duckdb.DuckDBPyConnection) -> list[WorkflowRecord]:
    touched = "SELECT DISTINCT e.wf FROM batch WHERE e.wf IS NOT NULL"
    counts: dict[str, dict[str, int]] = {}
    for wf, state, n in cursor.execute(
        f"SELECT wf, state, count(*) FROM jobs WHERE wf IN ({touched}) GROUP BY ALL"
    ).fetchall():
        counts.setdefault(wf, {})[state] = n
    last_seq = cursor.execute("SELECT max(seq) FROM batch").fetchone()
    rows = cursor.execute(
        'SELECT wf, name, "user", job_count, epoch(submitted_at), completed_at IS NOT NULL '
        "AND (restarted_at IS NULL OR completed_at > restarted_at) "
        f"FROM workflows WHERE wf IN ({touched})"
    ).fetchall()
    return [
        WorkflowRecord(
            wf=wf,
            name=name or "",
            user=user or "",
            job_count=job_count or 0,
            submitted_at=float(submitted or 0.0),
            finished=bool(finished),
            counts=counts.get(wf, {}),
            seq=int(last_seq[0]) if last_seq else 0,
        )
        for wf, name, user, job_count, submitted, finished in rows
    ]
