"""Archiving one workflow: its events to Parquet in ARCHIVE, announced, then purged.

Each step can be repeated after a crash at any point: the object is written again, the
announcement is recognised (CAS on the workflow's subjects; a repeat finds it already
there) and purging what is already gone purges nothing. The purge removes only the
messages the archive holds (up to its last sequence), so an event of the workflow
appended meanwhile stays in the log; and it runs only after the caller's projector has
folded the announcement, so no read model misses an event.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio
from nats.js.api import ObjectMeta

from jobstream.archive.parquet import ArchiveWriter, Written
from jobstream.archive.store import archive_object, archive_store
from jobstream.errors import JobstreamError
from jobstream.events import WorkflowArchived, WorkflowCompleted
from jobstream.streams.bulk import read_to_end
from jobstream.streams.connection import Connection
from jobstream.streams.store import Stored
from jobstream.streams.subjects import EVENTS_STREAM, workflow_filter, workflow_subjects


class NotArchivable(JobstreamError):
    """The workflow is not finished (or does not exist)."""


def archivable(last: object, wf: str) -> WorkflowArchived | None:
    """Decide from the workflow's last workflow-level event: archive it (None), it is
    archived already (its announcement), or refuse (NotArchivable)."""
    if isinstance(last, Stored) and isinstance(last.event, WorkflowArchived):
        return last.event
    if isinstance(last, Stored) and isinstance(last.event, WorkflowCompleted):
        return None
    if last is None:
        raise NotArchivable(f"no workflow {wf!r}")
    raise NotArchivable(f"workflow {wf} is not finished: only finished workflows are archived")


async def announce(
    conn: Connection, wf: str, folder: Path, actor: str
) -> tuple[int, WorkflowArchived]:
    """Archive the workflow's events unless done already; the announcement and its
    sequence."""
    last = await conn.store.last(workflow_subjects(wf))
    done = archivable(last, wf)
    if done is not None:
        assert last is not None
        return last.seq, done
    assert last is not None
    objects = await archive_store(conn.js)
    if objects is None:
        raise JobstreamError("there is no ARCHIVE object store: start a server of this version")
    with tempfile.TemporaryDirectory(prefix="archive-", dir=folder) as work:
        path = Path(work) / archive_object(wf)
        written = await _write(conn, wf, path)
        with path.open("rb") as data:
            info = await objects.put(archive_object(wf), data, ObjectMeta(name=archive_object(wf)))
    announcement = WorkflowArchived(
        wf=wf,
        at=time.time(),
        actor=actor,
        object=archive_object(wf),
        events=written.events,
        first_seq=written.first_seq,
        last_seq=written.last_seq,
        size=int(info.size or 0),
        digest=str(info.digest or ""),
    )
    return await conn.store.append(announcement, last.seq), announcement


async def _write(conn: Connection, wf: str, path: Path) -> Written:
    """Every message of the workflow, read from the log into a Parquet file."""
    with ArchiveWriter(path) as writer:
        async with read_to_end(conn.js, conn.endpoint, workflow_filter(wf)) as batches:
            async for raw in batches:
                await anyio.to_thread.run_sync(writer.write, raw)
        return await anyio.to_thread.run_sync(writer.close)


async def purge(conn: Connection, wf: str, last_seq: int) -> None:
    """Remove from EVENTS the workflow's messages up to ``last_seq``: what its archive
    holds."""
    await conn.js.purge_stream(EVENTS_STREAM, subject=workflow_filter(wf), seq=last_seq + 1)
