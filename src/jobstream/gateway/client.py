"""A submitter's side of the submitter service: the same operations as an admin's
commands, asked of the service over NATS (a submitter has no JetStream access)."""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Callable

import anyio
import msgspec
import pyarrow as pa
from nats.aio.client import Client as NATS

from jobstream.errors import JobstreamError, ServerError
from jobstream.gateway.protocol import (
    MORE_HEADER,
    CancelJobs,
    ExplainJob,
    OneWorkflow,
    ReadEvents,
    ReadStatus,
    SubmitJobs,
    operation_subject,
)
from jobstream.model import JobDef, WorkflowDef
from jobstream.ops.cancel import CancelResult
from jobstream.ops.submit import check_sizes, workflow_submitted
from jobstream.projections.query import ERROR_HEADER, remote_query
from jobstream.projections.records import WorkflowStatus
from jobstream.streams.connection import dial, hang_up
from jobstream.streams.urls import user_of

ANSWER_TIMEOUT_S = 120.0
POLL_S = 1.0
ROOM = 8192  # bytes of a request kept for the envelope around its jobs


class Submitter:
    """Requests to the submitter service as one user."""

    def __init__(self, nc: NATS, user: str) -> None:
        self.nc = nc
        self.user = user

    async def ask(self, operation: str, request: bytes) -> AsyncIterator[bytes]:
        """The parts of the service's answer; JobstreamError with its message."""
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        try:
            await self.nc.publish(operation_subject(self.user, operation), request, reply=inbox)
            while True:
                try:
                    msg = await sub.next_msg(timeout=ANSWER_TIMEOUT_S)
                except TimeoutError:
                    raise ServerError("the submitter service did not answer") from None
                headers = msg.headers or {}
                if ERROR_HEADER in headers:
                    raise JobstreamError(headers[ERROR_HEADER])
                if "Status" in headers:  # 503: nobody serves the subject
                    raise ServerError(
                        "no submitter service answers: is `jobstream server` running?"
                    )
                yield msg.data
                if MORE_HEADER not in headers:
                    return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def one(self, operation: str, request: bytes) -> bytes:
        parts = [part async for part in self.ask(operation, request)]
        return b"".join(parts)

    async def submit(
        self,
        workflow: WorkflowDef,
        workdir: str,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> str:
        """Open the workflow, then send its jobs in requests that fit the server."""
        opening = workflow_submitted(workflow, workdir, self.user)
        check_sizes(opening, workflow, self.nc.max_payload)
        wf = str(json.loads(await self.one("open", msgspec.json.encode(opening)))["wf"])
        sent, total = 0, len(workflow.jobs)
        for jobs in _requests(workflow.jobs, self.nc.max_payload - ROOM):
            await self.one("jobs", msgspec.json.encode(SubmitJobs(wf, jobs)))
            sent += len(jobs)
            if on_progress:
                on_progress(sent, total)
        return wf

    async def cancel(self, wf: str, jobs: list[int] | None, reason: str) -> CancelResult:
        answer = await self.one("cancel", msgspec.json.encode(CancelJobs(wf, jobs, reason)))
        return msgspec.json.decode(answer, type=CancelResult)

    async def restart(self, wf: str) -> list[int]:
        """Your workflow's failed, timed-out and canceled jobs run again; which."""
        answer = await self.one("restart", msgspec.json.encode(OneWorkflow(wf)))
        return msgspec.json.decode(answer, type=list[int])

    async def explain(self, wf: str, job: str | int) -> list[str]:
        answer = await self.one("explain", msgspec.json.encode(ExplainJob(wf, str(job))))
        return msgspec.json.decode(answer, type=list[str])

    async def events(self, wf: str, job: int | None) -> AsyncIterator[list[dict[str, object]]]:
        async for part in self.ask("events", msgspec.json.encode(ReadEvents(wf, job))):
            yield msgspec.json.decode(part, type=list[dict[str, object]])

    async def statuses(self, wf: str | None) -> list[WorkflowStatus]:
        answer = await self.one("status", msgspec.json.encode(ReadStatus(wf)))
        return msgspec.json.decode(answer, type=list[WorkflowStatus])

    async def follow(
        self,
        wf: str | None,
        on_update: Callable[[WorkflowStatus], None] | None = None,
        poll_s: float = POLL_S,
    ) -> WorkflowStatus:
        """Your workflow's status (default: the latest unfinished, else the latest) each
        ``poll_s`` until it has finished (a submitter cannot watch the JOBS bucket)."""
        if wf is None:
            found = await self.statuses(None)
            if not found:
                raise JobstreamError("no workflows of yours yet")
            wf = ([s for s in found if not s.finished] or found)[-1].wf
        while True:
            for status in await self.statuses(wf):  # none until the projector has it
                if on_update:
                    on_update(status)
                if status.finished:
                    return status
            await anyio.sleep(poll_s)

    async def sql(self, sql: str) -> pa.Table:
        return await remote_query(self.nc, sql, operation_subject(self.user, "sql"))


def _requests(jobs: tuple[JobDef, ...], room: int) -> list[list[JobDef]]:
    """Jobs grouped into requests of at most ``room`` bytes each."""
    groups: list[list[JobDef]] = [[]]
    size = 0
    for job in jobs:
        each = len(msgspec.json.encode(job)) + 1
        if groups[-1] and size + each > room:
            groups.append([])
            size = 0
        groups[-1].append(job)
        size += each
    return [group for group in groups if group]


@contextlib.asynccontextmanager
async def submitter_session(
    url: str, name: str = "jobstream", tls: ssl.SSLContext | None = None
) -> AsyncIterator[Submitter]:
    """A submitter's connection (``url`` carries its login) for the time of the block."""
    user = user_of(url)
    if user is None:
        raise ServerError("a submitter logs in: give its credentials file with --creds")
    nc = await dial(url, name, tls)
    try:
        yield Submitter(nc, user)
    finally:
        await hang_up(nc)
