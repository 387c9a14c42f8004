"""The DuckDB file: schema, one transaction per batch (rows + checkpoint), queries.

The checkpoint row is the tracking record: it holds the last stream sequence applied and
moves in the same transaction as the rows, so a batch is applied exactly once however
often it is delivered. DuckDB allows one writing process; everything here is blocking
and is called from a worker thread.
"""

from __future__ import annotations

import bisect
import logging
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa

from jobstream.codec import schema_version
from jobstream.projections import counts
from jobstream.projections.divergence import Recorded
from jobstream.projections.guard import DEFAULT_LIMITS, SANDBOX, QueryLimits, lock, read_only
from jobstream.projections.model import EVENT_STRUCT_JSON, ReadModel, ts, well_formed
from jobstream.projections.owned import owned_query
from jobstream.projections.records import JobRecord, WorkflowStatus
from jobstream.projections.tables import READ_MODELS
from jobstream.projections.tables.jobs import MODEL as JOBS
from jobstream.projections.views import view_ddl
from jobstream.streams.store import Stored, decoded
from jobstream.streams.subjects import EVENTS_STREAM
from jobstream.streams.wire import RawBatch

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
WELL_FORMED = well_formed()
SKIPPED_LOGGED = 20  # per batch, by sequence; the rest in one line
CHECKPOINT_THRESHOLD = "256MB"
TABLES = (*(model.name for model in READ_MODELS), "checkpoint")
SET_KV_CHECKPOINT = "INSERT OR REPLACE INTO kv_checkpoint VALUES (1, ?)"


class DuckStore:
    """One DuckDB database holding every read model."""

    def __init__(
        self, path: Path | str, read_only: bool = False, limits: QueryLimits = DEFAULT_LIMITS
    ) -> None:
        self.path = str(path)
        self.limits = limits
        # One thread: batches are small and frequent, and the two cores here are shared
        # with the server, the scheduler and the jobs; more threads only add hand-offs.
        # A checkpoint rewrites the changed tables' compressed segments and indexes; at
        # DuckDB's default (a checkpoint per 16 MB of log) that dominated projecting.
        # 256 MB bounds the log a restart replays to a few seconds.
        config: dict[str, str | bool | int | float | list[str]] = {
            **SANDBOX,
            "threads": 1,
            "checkpoint_threshold": CHECKPOINT_THRESHOLD,
        }
        self.db = duckdb.connect(self.path, read_only=read_only, config=config)
        if read_only:
            lock(self.db)
            return
        for model in READ_MODELS:
            self.db.execute(model.ddl())
            self._add_new_columns(model)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS checkpoint "
            "(id INTEGER PRIMARY KEY, seq BIGINT, event_time TIMESTAMP, schema_version INTEGER)"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS kv_checkpoint (id INTEGER PRIMARY KEY, seq BIGINT)"
        )
        self._ensure_counts()
        for ddl in view_ddl():
            self.db.execute(ddl)
        lock(self.db)

    def _add_new_columns(self, model: ReadModel) -> None:
        """Columns a read model gained since the file was made (NULL in its old rows, as
        a rebuild from events that did not carry them gives too)."""
        present = {
            name
            for (name,) in self.db.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [model.name]
            ).fetchall()
        }
        for name, kind in model.columns.items():
            if name not in present:
                self.db.execute(f'ALTER TABLE {model.name} ADD COLUMN "{name}" {kind}')

    def _ensure_counts(self) -> None:
        """Make the job counts table, filled from ``jobs`` in the same transaction."""
        if self.db.execute(
            "SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [counts.TABLE]
        ).fetchone():
            return
        self.db.execute("BEGIN TRANSACTION")
        self.db.execute(counts.DDL)
        self.db.execute(counts.FILL)
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def checkpoint(self) -> int:
        return _checkpoint_of(self.db)

    def kv_checkpoint(self) -> int:
        """The last sequence whose KV records are known to be stored (see
        :meth:`Projector`); a file that never tracked it is in step with its rows."""
        row = self.db.execute("SELECT seq FROM kv_checkpoint WHERE id = 1").fetchone()
        return int(row[0]) if row else self.checkpoint()

    def last_event(self) -> Recorded | None:
        """The event of highest sequence in the ``events`` table."""
        row = self.db.execute(
            "SELECT seq, subject, payload FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else Recorded(int(row[0]), str(row[1]), str(row[2]))

    def set_kv_checkpoint(self, seq: int) -> None:
        self.db.execute(SET_KV_CHECKPOINT, [seq])

    def apply(
        self, raw: RawBatch, *, kv_seq: int | None = None, records: bool = False
    ) -> Records | None:
        """Fold a batch into every table and move the checkpoint, in one transaction.

        Events at or below the checkpoint are skipped (redelivery, replay); None if that
        was all of them. ``kv_seq`` moves the KV checkpoint in the same transaction.
        With ``records``, returns the KV records of every job and workflow the batch
        touched, as they stand after it.
        """
        staged = self.stage(raw)
        return None if staged is None else self.fold(staged, kv_seq=kv_seq, records=records)

    def stage(self, raw: RawBatch) -> Staged | None:
        """The first half of :meth:`apply`: parse the events after the checkpoint into a
        cursor of their own (None if there are none). It may run in one thread while
        :meth:`fold` folds the batch before in another."""
        cursor = self.db.cursor()
        try:
            first = bisect.bisect_right(raw.seqs, _checkpoint_of(cursor))  # seqs ascend
            if first == len(raw.seqs):
                cursor.close()
                return None
            cursor.register("staged", _staged(raw, first))
            _stage(cursor)
        except BaseException:
            cursor.close()
            raise
        return Staged(cursor, raw.seqs[first], raw.seqs[-1])

    def fold(
        self, staged: Staged, *, kv_seq: int | None = None, records: bool = False
    ) -> Records | None:
        """The second half of :meth:`apply` (see there), for a staged batch; what a batch
        folded since it was staged already covered is left out."""
        cursor = staged.cursor
        try:
            checkpoint = _checkpoint_of(cursor)
            if staged.last_seq <= checkpoint:
                return None
            if staged.first_seq <= checkpoint:
                cursor.execute("DELETE FROM batch WHERE seq <= ?", [checkpoint])
            return _fold(cursor, staged.last_seq, kv_seq, records)
        finally:
            cursor.close()

    def finished_before(self, at: float) -> list[str]:
        """Workflows finished (and not restarted since) before unix time ``at`` and not
        archived: the ones to archive, the longest finished first."""
        rows = self.db.execute(
            "SELECT wf FROM workflows WHERE completed_at < make_timestamp(CAST(? AS BIGINT)) "
            "AND (restarted_at IS NULL OR completed_at > restarted_at) "
            "AND wf NOT IN (SELECT wf FROM archives) ORDER BY completed_at",
            [int(at * 1_000_000)],
        ).fetchall()
        return [wf for (wf,) in rows]

    def archived(self) -> list[tuple[str, int]]:
        """Every archived workflow and the last sequence its archive holds."""
        rows = self.db.execute("SELECT wf, last_seq FROM archives ORDER BY seq").fetchall()
        return [(wf, int(last)) for wf, last in rows]

    def records_after(self, seq: int) -> Records:
        """KV records, as they stand now, of everything touched by events after ``seq``."""
        cursor = self.db.cursor()
        try:
            return _records(cursor, events_touched(seq))
        finally:
            cursor.close()

    def query(self, sql: str, owner: str | None = None) -> pa.Table:
        """Run a user's read-only query on its own cursor (the writer may run meanwhile);
        refused or failed: QueryError (see :mod:`jobstream.projections.guard`). With an
        ``owner``: on that submitter's rows only (:mod:`jobstream.projections.owned`)."""
        if owner is not None:
            return owned_query(self.db, owner, sql, self.limits)
        cursor = self.db.cursor()
        try:
            return read_only(cursor, sql, self.limits)
        finally:
            cursor.close()


def kv_checkpoint_of(path: Path) -> int:
    """How far the KV records of an existing file's projector got (0 with no file)."""
    if not path.exists():
        return 0
    store = DuckStore(path, read_only=True)
    try:
        return store.kv_checkpoint()
    except duckdb.CatalogException:  # written before KV was tracked: in step with its rows
        return store.checkpoint()
    finally:
        store.close()


class Staged(NamedTuple):
    """A batch parsed into the ``batch`` table of its own cursor, to be folded."""

    cursor: duckdb.DuckDBPyConnection
    first_seq: int
    last_seq: int


def _checkpoint_of(cursor: duckdb.DuckDBPyConnection) -> int:
    rows = cursor.execute("SELECT seq FROM checkpoint WHERE id = 1").fetchall()
    return int(rows[0][0]) if rows else 0


class Records(NamedTuple):
    """KV records of the jobs and workflows that a stretch of events touched, and the
    workflows it archived (whose job records go: only their workflow's stays)."""

    jobs: list[JobRecord]
    workflows: list[WorkflowStatus]
    archived: list[str]

    def all(self) -> list[JobRecord | WorkflowStatus]:
        return [*self.jobs, *self.workflows]


class Touched(NamedTuple):
    """SQL for the (wf, job) pairs, the workflows and the first and last sequence of
    some events."""

    jobs: str
    workflows: str
    last_seq: str
    first_seq: str


BATCH_TOUCHED = Touched(
    jobs="SELECT DISTINCT e.wf AS wf, e.job AS job FROM batch WHERE e.job IS NOT NULL",
    workflows="SELECT DISTINCT e.wf FROM batch WHERE e.wf IS NOT NULL",
    last_seq="SELECT max(seq) FROM batch",
    first_seq="SELECT min(seq) - 1 FROM batch",
)


def events_touched(after: int) -> Touched:
    where = f"FROM events WHERE seq > {int(after)}"
    return Touched(
        jobs=f"SELECT DISTINCT wf, job {where} AND job IS NOT NULL",
        workflows=f"SELECT DISTINCT wf {where} AND wf IS NOT NULL",
        last_seq=f"SELECT max(seq) {where}",
        first_seq=str(int(after)),
    )


def _staged(raw: RawBatch, first: int) -> pa.Table:
    """The batch from index ``first`` on, as Arrow columns; ``event`` says whether the
    decoder takes the message for an event (the scheduler's and every reader's verdict:
    SQL alone would take a field of the wrong type for text, or a NULL)."""
    version_of: dict[int, int | None] = {}  # headers are mostly shared (the bulk reader)
    versions, events = [], []
    for seq, subject, headers, data in zip(
        raw.seqs[first:], raw.subjects[first:], raw.headers[first:], raw.payloads[first:],
        strict=True,
    ):  # fmt: skip
        key = id(headers)
        if key not in version_of:
            version_of[key] = _version(headers)
        versions.append(version_of[key])
        events.append(isinstance(decoded(seq, subject, headers, data), Stored))
    return pa.table(
        {
            "seq": pa.array(raw.seqs[first:], pa.int64()),
            "subject": pa.array(raw.subjects[first:], pa.string()),
            "version": pa.array(versions, pa.int32()),
            "payload": _texts(raw.payloads[first:]),
            "event": pa.array(events, pa.bool_()),
        }
    )


def _version(headers: dict[str, str] | None) -> int | None:
    """The schema version a header names; None (the event is skipped) if not a number."""
    try:
        return schema_version(headers)
    except ValueError:
        return None


def _texts(payloads: list[bytes]) -> pa.Array:
    """Payloads as Arrow strings; one that is not UTF-8 becomes '' (malformed JSON)."""
    try:
        return pa.array(payloads, pa.string())
    except pa.ArrowInvalid:
        return pa.array([payload_text(p) for p in payloads], pa.string())


def payload_text(payload: bytes) -> str:
    """A payload as the ``events`` table holds it."""
    try:
        return payload.decode()
    except UnicodeDecodeError:
        return ""


def _stage(cursor: duckdb.DuckDBPyConnection) -> None:
    """Parse the registered ``staged`` rows into the ``batch`` temp table.

    No ORDER BY: the batch arrives in stream order, and the folds order by seq. Events
    that are not JSON or not well formed are left out and logged, as the scheduler's
    decoder skips them. Checking every payload for malformed JSON is not free, so only a
    batch that holds some (the parse fails) is staged again with the check. The
    ill-formed are deleted
    afterwards: filtering in the same statement parsed each payload once per condition.
    """
    parse = f"json_transform(payload, '{EVENT_STRUCT_JSON}')"
    stage = (
        "CREATE OR REPLACE TEMP TABLE batch AS "
        "SELECT seq, subject, version, payload, event, {} AS e FROM staged"
    )
    try:
        cursor.execute(stage.format(parse))
    except duckdb.InvalidInputException:
        cursor.execute(stage.format(f"CASE WHEN json_valid(payload) THEN {parse} END"))
    cursor.execute(
        f"DELETE FROM batch WHERE NOT (event AND version IS NOT NULL AND {WELL_FORMED}) "
        "RETURNING seq"
    )
    skipped = [seq for (seq,) in cursor.fetchall()]
    for seq in skipped[:SKIPPED_LOGGED]:
        log.error("skipped: %s#%d is not a well-formed event", EVENTS_STREAM, seq)
    if len(skipped) > SKIPPED_LOGGED:
        log.error(
            "skipped: %d more events of this batch that are not well formed, up to %s#%d",
            len(skipped) - SKIPPED_LOGGED,
            EVENTS_STREAM,
            skipped[-1],
        )


def _fold(
    cursor: duckdb.DuckDBPyConnection, last_seq: int, kv_seq: int | None, records: bool
) -> Records:
    """Fold the staged ``batch`` into every table and move the checkpoints, atomically."""
    cursor.execute("BEGIN TRANSACTION")
    try:
        _drop_strays(cursor)
        present = {row[0] for row in cursor.execute("SELECT DISTINCT e.type FROM batch").fetchall()}
        counting = bool(JOBS.reads & present)
        if counting:
            cursor.execute(counts.note_prior(BATCH_TOUCHED.jobs))
        for model in READ_MODELS:
            if not model.reads or model.reads & present:
                cursor.execute(model.insert_sql())
        if counting:
            cursor.execute(counts.add_changes(BATCH_TOUCHED.jobs))
        # Malformed events at the end of a batch still count as applied.
        cursor.execute(
            "INSERT OR REPLACE INTO checkpoint "
            f"SELECT 1, ?, arg_max({ts()}, seq), {SCHEMA_VERSION} FROM batch",
            [last_seq],
        )
        if kv_seq is not None:
            cursor.execute(SET_KV_CHECKPOINT, [kv_seq])
        found = Records([], [], [])
        if records:
            found = _records(cursor, BATCH_TOUCHED)
        cursor.execute("COMMIT")
        return found
    except BaseException:
        cursor.execute("ROLLBACK")
        raise


# Job events that no writer of jobstream appends where they stand: about a job not yet
# submitted (neither in ``jobs`` nor submitted earlier in the batch), or submitting one
# again. The scheduler does not fold them either (``scheduler/state.Stray``).
STRAYS = """
DELETE FROM batch WHERE seq IN (
    SELECT b.seq FROM batch b
    LEFT JOIN (
        SELECT e.wf AS wf, e.job AS job, min(seq) AS first FROM batch
        WHERE e.type = 'JobSubmitted' GROUP BY ALL
    ) s ON s.wf = b.e.wf AND s.job = b.e.job
    LEFT JOIN jobs j ON j.wf = b.e.wf AND j.job = b.e.job
    WHERE b.e.job IS NOT NULL AND CASE
        WHEN b.e.type = 'JobSubmitted' THEN j.wf IS NOT NULL OR s.first < b.seq
        ELSE j.wf IS NULL AND (s.first IS NULL OR s.first > b.seq)
    END
) RETURNING seq
"""


def _drop_strays(cursor: duckdb.DuckDBPyConnection) -> None:
    """Leave out (and log) the batch's job events that are out of place."""
    strays = [seq for (seq,) in cursor.execute(STRAYS).fetchall()]
    for seq in strays[:SKIPPED_LOGGED]:
        log.error("skipped: %s#%d is a job event out of place", EVENTS_STREAM, seq)


def _records(cursor: duckdb.DuckDBPyConnection, touched: Touched) -> Records:
    archived = cursor.execute(
        f"SELECT wf FROM archives WHERE seq > ({touched.first_seq}) ORDER BY seq"
    ).fetchall()
    return Records(
        _job_records(cursor, touched),
        _workflow_records(cursor, touched),
        [wf for (wf,) in archived],
    )


def _job_records(cursor: duckdb.DuckDBPyConnection, touched: Touched) -> list[JobRecord]:
    rows = cursor.execute(
        "SELECT j.wf, j.job, j.state, j.attempt, j.worker, epoch(j.updated_at), j.last_seq "
        f"FROM jobs j JOIN ({touched.jobs}) t ON j.wf = t.wf AND j.job = t.job "
        "WHERE j.wf NOT IN (SELECT wf FROM archives)"
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


def _workflow_records(cursor: duckdb.DuckDBPyConnection, touched: Touched) -> list[WorkflowStatus]:
    by_state: dict[str, dict[str, int]] = {}
    for wf, state, n in cursor.execute(counts.of_workflows(touched.workflows)).fetchall():
        by_state.setdefault(wf, {})[state] = n
    last_seq = cursor.execute(touched.last_seq).fetchone()
    rows = cursor.execute(
        'SELECT wf, name, "user", job_count, epoch(submitted_at), completed_at IS NOT NULL '
        "AND (restarted_at IS NULL OR completed_at > restarted_at) "
        f"FROM workflows WHERE wf IN ({touched.workflows})"
    ).fetchall()
    return [
        WorkflowStatus(
            wf=wf,
            name=name or "",
            user=user or "",
            job_count=job_count or 0,
            submitted_at=float(submitted or 0.0),
            finished=bool(finished),
            counts=by_state.get(wf, {}),
            seq=int(last_seq[0]) if last_seq and last_seq[0] is not None else 0,
        )
        for wf, name, user, job_count, submitted, finished in rows
    ]
