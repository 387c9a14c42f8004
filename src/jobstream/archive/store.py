"""The object store ARCHIVE and the log's announcements of what it holds."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from jobstream.archive.parquet import read_archive
from jobstream.errors import JobstreamError
from jobstream.events import WorkflowArchived
from jobstream.streams.bulk import read_to_end
from jobstream.streams.connection import Connection
from jobstream.streams.reader import decode_batch
from jobstream.streams.store import Stored
from jobstream.streams.subjects import ARCHIVE_BUCKET, kind_filter, workflow_event_subject
from jobstream.streams.wire import RawBatch


def archive_object(wf: str) -> str:
    return f"{wf}.parquet"


async def archive_store(js: JetStreamContext) -> ObjectStore | None:
    """ARCHIVE, or None where nothing was ever archived (a server makes it at start)."""
    try:
        return await js.object_store(ARCHIVE_BUCKET)
    except NotFoundError:
        return None


async def archive_of(conn: Connection, wf: str) -> WorkflowArchived | None:
    """The workflow's announcement of its archive, if it was archived."""
    last = await conn.store.last(workflow_event_subject(wf, WorkflowArchived.__name__))
    if isinstance(last, Stored) and isinstance(last.event, WorkflowArchived):
        return last.event
    return None


async def announcements(conn: Connection, from_seq: int = 1) -> list[WorkflowArchived]:
    """The archives holding events at or after ``from_seq`` (announced after them), the
    latest announcement of each workflow, in the order of their first events."""
    latest: dict[str, WorkflowArchived] = {}
    subject = kind_filter(WorkflowArchived)
    async with read_to_end(conn.js, conn.endpoint, subject, from_seq=from_seq) as batches:
        async for raw in batches:
            for stored in decode_batch(raw).events:
                if isinstance(stored.event, WorkflowArchived):
                    latest[stored.event.wf] = stored.event
    found = [ref for ref in latest.values() if ref.last_seq >= from_seq]
    return sorted(found, key=lambda ref: ref.first_seq)


async def archived_rows(
    conn: Connection, ref: WorkflowArchived, rows: int
) -> AsyncGenerator[RawBatch, None]:
    """An archive's messages in stream order (downloaded to a temporary file, removed
    when the iteration ends); JobstreamError if it is missing or not the one announced."""
    where = f"the archive of workflow {ref.wf} ({ARCHIVE_BUCKET}/{ref.object})"
    store = await archive_store(conn.js)
    if store is None:
        raise JobstreamError(f"{where} is missing: there is no {ARCHIVE_BUCKET} object store")
    with tempfile.TemporaryDirectory(prefix="jobstream-archive-") as folder:
        path = Path(folder) / "archive.parquet"
        with path.open("wb") as into:
            try:
                found = await store.get(ref.object, writeinto=into)
            except NotFoundError:
                raise JobstreamError(f"{where} is missing") from None
        if found.info.digest != ref.digest:
            raise JobstreamError(
                f"{where} is not the one announced (digest {found.info.digest}, "
                f"announced {ref.digest})"
            )
        batches = read_archive(path, rows)
        with contextlib.closing(batches):
            while True:
                try:
                    batch = await anyio.to_thread.run_sync(next, batches, None)
                except (ValueError, OSError) as exc:  # pyarrow's errors are ValueErrors
                    raise JobstreamError(f"{where} cannot be read: {exc}") from exc
                if batch is None:
                    break
                yield batch
