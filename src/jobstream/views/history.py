"""The recorded history of a workflow or one job, read from the log itself (the audit)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from jobstream.streams.connection import Connection
from jobstream.streams.reader import read_batches
from jobstream.streams.store import IllFormed, Stored
from jobstream.streams.subjects import job_subjects, workflow_filter

COMMON = ("type", "wf", "job", "at", "actor")


ILL_FORMED = "(ill-formed)"
SHOWN_BYTES = 500


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
    formed ones included; with ``follow``, new ones as they are recorded, until
    cancelled."""
    subject = workflow_filter(wf) if job is None else job_subjects(wf, job)
    async for batch in read_batches(conn.js, subject, follow=follow):
        yield batch.in_order()
