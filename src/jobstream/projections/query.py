"""SQL over NATS: the projector answers queries on its DuckDB file (one writer only).

Request on ``jobstream.sql`` with JSON ``{"sql": ...}`` (and ``"owner"``: that submitter's
rows only; the subject is the admin's and the submitter service's alone); the answer is
an Arrow IPC stream split into chunks that fit the server's max payload, each published
to the request's reply subject with a ``Jobstream-Chunk: i/n`` header (or one
``Jobstream-Error`` message).
``jobstream.sql.ping`` tells a client whether a projector is there at all. Commands
(``jobstream.rebuild``, ``jobstream.archive``) take and answer a JSON object, with
``"error"`` when they fail; they are the admin's subjects alone.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping

import anyio
import pyarrow as pa
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError

from jobstream.projections.guard import QueryError
from jobstream.streams.subjects import (
    ARCHIVE_SUBJECT,
    REBUILD_SUBJECT,
    SQL_PING_SUBJECT,
    SQL_SUBJECT,
)

CHUNK_HEADER = "Jobstream-Chunk"
ERROR_HEADER = "Jobstream-Error"
QUEUE = "jobstream-projector"
QUERY_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 3600.0  # a rebuild of a long history, the archive of a big workflow
Command = Callable[[dict[str, object]], Awaitable[dict[str, object]]]


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


async def serve_queries(
    nc: NATS,
    run_query: Callable[[str, str | None], Awaitable[pa.Table]],
    commands: Mapping[str, Command],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Answer queries until cancelled."""

    async def on_query(msg: Msg) -> None:
        try:
            request = json.loads(msg.data)
            data = to_ipc(await run_query(request["sql"], request.get("owner")))
        except Exception as exc:  # any failure is the caller's answer, not ours to crash on
            await nc.publish(msg.reply, b"", headers={ERROR_HEADER: _one_line(exc)})
            return
        size = max(1024, nc.max_payload - 4096)
        chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        for i, chunk in enumerate(chunks, 1):
            await nc.publish(msg.reply, chunk, headers={CHUNK_HEADER: f"{i}/{len(chunks)}"})

    async def on_ping(msg: Msg) -> None:
        await msg.respond(b"pong")

    def on_command(command: Command) -> Callable[[Msg], Awaitable[None]]:
        async def answer(msg: Msg) -> None:
            try:
                request = json.loads(msg.data) if msg.data else {}
                if not isinstance(request, dict):
                    raise ValueError("a command is a JSON object")
                reply = json.dumps(await command(request)).encode()
            except Exception as exc:
                reply = json.dumps({"error": _one_line(exc)}).encode()
            await msg.respond(reply)

        return answer

    subs = [
        await nc.subscribe(SQL_SUBJECT, queue=QUEUE, cb=on_query),
        await nc.subscribe(SQL_PING_SUBJECT, queue=QUEUE, cb=on_ping),
    ]
    for subject, command in commands.items():
        subs.append(await nc.subscribe(subject, queue=QUEUE, cb=on_command(command)))
    task_status.started()
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            for sub in subs:
                await sub.unsubscribe()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:2000] or type(exc).__name__


async def projector_available(nc: NATS) -> bool:
    try:
        await nc.request(SQL_PING_SUBJECT, b"", timeout=1.0)
    except (NoRespondersError, TimeoutError):
        return False
    return True


async def remote_query(nc: NATS, sql: str, subject: str = SQL_SUBJECT) -> pa.Table:
    """Ask the projector (or, as a submitter, the submitter service's ``subject``, which
    passes it on); raises QueryError with the database's message on failure."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        await nc.publish(subject, json.dumps({"sql": sql}).encode(), reply=inbox)
        parts: list[bytes] = []
        with anyio.fail_after(QUERY_TIMEOUT_S):
            while True:
                msg = await sub.next_msg(timeout=QUERY_TIMEOUT_S)
                headers = msg.headers or {}
                if ERROR_HEADER in headers:
                    raise QueryError(headers[ERROR_HEADER])
                if CHUNK_HEADER not in headers:  # a status: nobody serves queries (yet)
                    raise QueryError(f"no projector answered ({headers.get('Status', '?')})")
                parts.append(msg.data)
                index, total = headers[CHUNK_HEADER].split("/")
                if index == total:
                    break
    finally:
        await sub.unsubscribe()
    return from_ipc(b"".join(parts))


async def remote_command(
    nc: NATS, subject: str, request: dict[str, object], what: str
) -> dict[str, object]:
    """Have the projector carry out a command; QueryError naming ``what`` if it fails."""
    reply = await nc.request(subject, json.dumps(request).encode(), timeout=COMMAND_TIMEOUT_S)
    result: dict[str, object] = json.loads(reply.data)
    if "error" in result:
        raise QueryError(f"{what} failed: {result['error']}")
    return result


async def remote_rebuild(nc: NATS) -> dict[str, object]:
    return await remote_command(nc, REBUILD_SUBJECT, {}, "rebuild")


async def remote_archive(nc: NATS, wf: str) -> dict[str, object]:
    return await remote_command(nc, ARCHIVE_SUBJECT, {"wf": wf}, f"archiving {wf}")
