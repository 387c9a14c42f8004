"""The recorded history of a workflow or one job, read from the log itself (the audit)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from jobstream.archive.store import archive_of, archived_rows
from jobstream.streams.connection import Connection
from jobstream.streams.reader import decode_batch, read_batches
from jobstream.streams.store import IllFormed, Stored
from jobstream.streams.subjects import job_subjects, workflow_filter
from jobstream.streams.wire import picked

COMMON = ("type", "wf", "job", "at", "actor")


ILL_FORMED = "(ill-formed)"
SHOWN_BYTES = 500
ROWS_READ = 10_000


def event_row(stored: Stored | IllFormed) -> dict[str, object]:
    """One event as shown (stable ``--json`` field names): sequence, time, type, subject,
    actor, and the rest of its payload. A message that is not an event is shown as
    type ``(ill-formed)``, with why and its first bytes."""
    if isinstance(stored, IllFormed):
        return {
            "seq": stored.seq,
            "at": None,
            "type": ILL_FORMED,
            "subject": stored.subject,
            "actor": None,
            "payload": {
                "reason": stored.reason,
                "data": stored.data[:SHOWN_BYTES].decode(errors="replace"),
            },
        }
    payload = msgspec.to_builtins(stored.event)
    return {
        "seq": stored.seq,
        "at": stored.event.at,
        "type": type(stored.event).__name__,
        "subject": stored.subject,
        "actor": stored.event.actor,
        "payload": {k: v for k, v in payload.items() if k not in COMMON},
    }


async def history(
    conn: Connection, wf: str, job: int | None = None, *, follow: bool = False
) -> AsyncIterator[list[Stored | IllFormed]]:
    """The messages of a workflow (or of one of its jobs) in batches, oldest first, ill-
    formed ones included, those in its archive first; with ``follow``, new ones as they
    are recorded, until cancelled."""
    subject = workflow_filter(wf) if job is None else job_subjects(wf, job)
    archived = await archive_of(conn, wf)
    after = 0
    if archived is not None:
        prefix = subject.rstrip("*>")
        async for raw in archived_rows(conn, archived, ROWS_READ):
            mine = [i for i, found in enumerate(raw.subjects) if found.startswith(prefix)]
            yield decode_batch(picked(raw, mine)).in_order()
        after = archived.last_seq  # still in the log until purged: shown once
    async for batch in read_batches(conn.js, subject, follow=follow):
        yield [found for found in batch.in_order() if found.seq > after]
