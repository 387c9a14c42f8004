"""Rebuild the read models from the whole log: inside the running projector (which swaps
the fresh file in while it pauses), or, with none running, into the file directly. And
archive workflows, which only a running projector does (it purges what it has folded)."""

from __future__ import annotations

import anyio

from jobstream.config import Settings
from jobstream.errors import JobstreamError
from jobstream.projections.duck import kv_checkpoint_of
from jobstream.projections.query import projector_available, remote_archive, remote_rebuild
from jobstream.projections.service import rebuild_file
from jobstream.streams.connection import Connection


async def rebuild_models(conn: Connection, settings: Settings) -> dict[str, object]:
    """Replay the log into a fresh file and swap it in; events, seconds and the path.

    Offline, the fresh file keeps the old one's KV checkpoint, so the projector started
    next writes the KV records of everything the old file had not reached.
    """
    if await projector_available(conn.nc):
        return await remote_rebuild(conn.nc)
    path = settings.db_path()
    kv_seq = await anyio.to_thread.run_sync(kv_checkpoint_of, path)
    return await rebuild_file(conn, path, kv_seq)


async def archive_workflows(conn: Connection, workflows: list[str]) -> list[dict[str, object]]:
    """Have the running projector archive each workflow, in turn."""
    if not await projector_available(conn.nc):
        raise JobstreamError(
            "no projector is running: archiving needs one (`jobstream server` or "
            "`jobstream projector`)"
        )
    return [await remote_archive(conn.nc, wf) for wf in workflows]
