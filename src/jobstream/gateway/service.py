"""The submitter service: runs in `jobstream server` with the server's own identity and
does for each submitter what their identity may not do itself (they have no access to
JetStream at all), on their own workflows only.

Who asks is the subject's user token (the server's permissions vouch for it), never a
field of the request; whose a workflow is is its WorkflowSubmitted's ``user``, which
this service wrote from that token. Several servers may run it: requests go to a queue
group, and it keeps no state but a cache of owners.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import OrderedDict
from typing import TypeVar

import anyio
import msgspec
from nats.aio.msg import Msg

from jobstream.config import Settings
from jobstream.errors import JobstreamError
from jobstream.events import WorkflowSubmitted
from jobstream.gateway.protocol import (
    MORE_HEADER,
    OPERATIONS,
    CancelJobs,
    ExplainJob,
    OneWorkflow,
    ReadEvents,
    ReadStatus,
    RunSql,
    SubmitJobs,
    caller_of,
    may_answer,
)
from jobstream.ids import new_workflow_id
from jobstream.ops.cancel import cancel_jobs
from jobstream.ops.explain import explain_job
from jobstream.ops.identity import user_actor
from jobstream.ops.restart import restart_failed
from jobstream.ops.submit import check_submitters_workflow, submit_jobs
from jobstream.ops.workflows import ArchivedWorkflow, submitted_workflow
from jobstream.projections.kv import workflow_records
from jobstream.projections.query import ERROR_HEADER
from jobstream.streams.connection import Connection
from jobstream.streams.subjects import API_PREFIX, SQL_SUBJECT
from jobstream.views.history import event_row, history
from jobstream.views.status import with_problems

log = logging.getLogger(__name__)
T = TypeVar("T")
QUEUE = "jobstream-gateway"
OWNERS_KEPT = 10_000
ROWS_PER_ANSWER = 500


class NotYours(JobstreamError):
    """A workflow that is not the caller's (told apart from one that does not exist only
    in the log: both answer the same, so that ids cannot be probed)."""


class Gateway:
    """Answers ``jobstream.api.<user>.<operation>`` (gateway/protocol.py)."""

    def __init__(self, conn: Connection, settings: Settings) -> None:
        self.conn = conn
        self.settings = settings
        self.owners: OrderedDict[str, WorkflowSubmitted] = OrderedDict()
        self.refused: set[str] = set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Answer requests until cancelled; each in a task of its own."""
        async with anyio.create_task_group() as tg:

            async def on_request(msg: Msg) -> None:
                tg.start_soon(self.answer, msg)

            sub = await self.conn.nc.subscribe(f"{API_PREFIX}.*.*", queue=QUEUE, cb=on_request)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    await sub.unsubscribe()

    async def answer(self, msg: Msg) -> None:
        caller = caller_of(msg.subject)
        if caller is None:
            return
        user, operation = caller
        if not msg.reply or not may_answer(user, msg.reply):
            self._refuse(f"{user}: {operation} with reply subject {msg.reply!r}, not its inbox")
            return
        try:
            await self._carry_out(user, operation, msg)
        except (JobstreamError, msgspec.ValidationError, msgspec.DecodeError) as exc:
            await self._send(msg.reply, b"", {ERROR_HEADER: " ".join(str(exc).split())[:2000]})
        except Exception as exc:
            log.exception("%s: %s failed", user, operation)
            await self._send(
                msg.reply, b"", {ERROR_HEADER: f"the service failed: {type(exc).__name__}"}
            )

    async def _carry_out(self, user: str, operation: str, msg: Msg) -> None:
        handlers = {
            "open": self._open, "jobs": self._jobs, "cancel": self._cancel,
            "restart": self._restart, "explain": self._explain, "status": self._status,
            "events": self._events, "sql": self._sql,
        }  # fmt: skip
        handler = handlers.get(operation)
        if handler is None:
            raise JobstreamError(f"no operation {operation!r} (one of {', '.join(OPERATIONS)})")
        answer = await handler(user, msg)
        if answer is not None:
            await self._send(msg.reply, answer)

    async def _open(self, user: str, msg: Msg) -> bytes:
        """A new workflow, the caller's: id, time, user and actor are ours."""
        asked = _decoded(msg, WorkflowSubmitted)
        check_submitters_workflow(asked, self.settings)
        opened = msgspec.structs.replace(
            asked, wf=new_workflow_id(), at=time.time(), user=user, actor=user_actor(user)
        )
        await self.conn.store.append(opened, 0)
        self._remember(opened)
        return msgspec.json.encode({"wf": opened.wf})

    async def _jobs(self, user: str, msg: Msg) -> bytes:
        request = _decoded(msg, SubmitJobs)
        opened = await self._owned(user, request.wf)
        for job in request.jobs:
            if not 0 <= job.index < opened.job_count:
                raise JobstreamError(f"workflow {opened.wf} has no job {job.index}")
        await submit_jobs(self.conn, opened, request.jobs)
        return msgspec.json.encode({"jobs": len(request.jobs)})

    async def _cancel(self, user: str, msg: Msg) -> bytes:
        cancel = _decoded(msg, CancelJobs)
        await self._owned(user, cancel.wf)
        result = await cancel_jobs(
            self.conn, cancel.wf, cancel.jobs, reason=cancel.reason, actor=user_actor(user)
        )
        return msgspec.json.encode(result)

    async def _restart(self, user: str, msg: Msg) -> bytes:
        wf = (await self._owned(user, _decoded(msg, OneWorkflow).wf)).wf
        return msgspec.json.encode(await restart_failed(self.conn, wf, actor=user_actor(user)))

    async def _explain(self, user: str, msg: Msg) -> bytes:
        asked = _decoded(msg, ExplainJob)
        await self._owned(user, asked.wf)
        return msgspec.json.encode(await explain_job(self.conn, self.settings, asked.wf, asked.job))

    async def _status(self, user: str, msg: Msg) -> bytes:
        wanted = _decoded(msg, ReadStatus).wf
        if wanted is not None:
            await self._readable(user, wanted)
        mine = [s for s in await workflow_records(self.conn.js, wanted) if s.user == user]
        return msgspec.json.encode(
            [await with_problems(self.conn, self.settings, status) for status in mine]
        )

    async def _events(self, user: str, msg: Msg) -> None:
        """Answered in parts of ROWS_PER_ANSWER events."""
        read = _decoded(msg, ReadEvents)
        await self._readable(user, read.wf)
        rows: list[dict[str, object]] = []
        async for batch in history(self.conn, read.wf, read.job):
            rows += [event_row(message) for message in batch]
            while len(rows) >= ROWS_PER_ANSWER:
                more = msgspec.json.encode(rows[:ROWS_PER_ANSWER])
                await self._send(msg.reply, more, {MORE_HEADER: "1"})
                del rows[:ROWS_PER_ANSWER]
        await self._send(msg.reply, msgspec.json.encode(rows))

    async def _sql(self, user: str, msg: Msg) -> None:
        """Passed on: the projector answers the caller directly, from their rows only."""
        query = _decoded(msg, RunSql)
        payload = json.dumps({"sql": query.sql, "owner": user}).encode()
        await self.conn.nc.publish(SQL_SUBJECT, payload, reply=msg.reply)

    async def _owned(self, user: str, wf: str) -> WorkflowSubmitted:
        found = self.owners.get(wf)
        if found is None:
            try:
                found = await submitted_workflow(self.conn.store, wf)
            except ArchivedWorkflow:
                if await self._archived_owner(wf) == user:
                    raise  # theirs: read-only now
                raise NotYours(f"no workflow {wf!r} of yours") from None
            except JobstreamError:
                raise NotYours(f"no workflow {wf!r} of yours") from None
            self._remember(found)
        if found.user != user:
            raise NotYours(f"no workflow {wf!r} of yours")
        return found

    async def _readable(self, user: str, wf: str) -> None:
        """The caller may read the workflow: theirs, archived or not."""
        with contextlib.suppress(ArchivedWorkflow):
            await self._owned(user, wf)

    async def _archived_owner(self, wf: str) -> str | None:
        """Who submitted an archived workflow: its record in JOBS (kept when archived)."""
        found = await workflow_records(self.conn.js, wf)
        return found[0].user if found else None

    def _remember(self, submitted: WorkflowSubmitted) -> None:
        self.owners[submitted.wf] = submitted
        self.owners.move_to_end(submitted.wf)
        while len(self.owners) > OWNERS_KEPT:
            self.owners.popitem(last=False)

    async def _send(self, reply: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        await self.conn.nc.publish(reply, data, headers=headers)

    def _refuse(self, why: str) -> None:
        if why not in self.refused and len(self.refused) < OWNERS_KEPT:
            self.refused.add(why)
            log.warning("submitter service: not answered: %s", why)


def _decoded(msg: Msg, kind: type[T]) -> T:
    return msgspec.json.decode(msg.data, type=kind)
