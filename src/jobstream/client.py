"""The async Python library: submit, status, watch, events and SQL from a program.

    async with Client(nats_url="nats://127.0.0.1:4222") as js:
        wf = await js.submit("sweep.yaml")
        async for change in js.watch(wf):
            print(change)
        rows = await js.sql("select state, count(*) from jobs group by 1")

Without a URL it finds this directory's ``jobstream server``; with ``embedded=True`` it
starts a private embedded server on the state directory's store (like the CLI's ``run``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

from jobstream.access import follow, run_sql, summaries
from jobstream.config import Settings, load_settings
from jobstream.model import WorkflowDef
from jobstream.projections.kv import JobRecord, WorkflowRecord, watch_jobs
from jobstream.spec import load_spec
from jobstream.streams.connection import Connection, connect
from jobstream.streams.reader import read_until_caught_up
from jobstream.streams.store import Stored
from jobstream.streams.subjects import job_subject, workflow_filter
from jobstream.submit import submit_workflow
from jobstream.summary import Summary


class Client:
    """A connection to a jobstream deployment (use as ``async with``)."""

    def __init__(
        self,
        nats_url: str | None = None,
        *,
        state_dir: str | Path | None = None,
        embedded: bool = False,
    ) -> None:
        self.settings: Settings = load_settings(nats_url=nats_url, state_dir=state_dir)
        self.embedded = embedded
        self._stack = contextlib.AsyncExitStack()
        self._conn: Connection | None = None

    async def __aenter__(self) -> Client:
        self._conn = await self._stack.enter_async_context(
            connect(self.settings, embedded=self.embedded, name="jobstream-client")
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._conn = None
        await self._stack.aclose()

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("use the client inside `async with Client(...)`")
        return self._conn

    async def submit(self, spec: WorkflowDef | str | Path, *, workdir: str | None = None) -> str:
        """Submit a spec file or an expanded workflow; returns the workflow id."""
        workflow = spec if isinstance(spec, WorkflowDef) else load_spec(spec)
        return await submit_workflow(self.conn, workflow, workdir=workdir or os.getcwd())

    async def status(self, wf: str | None = None) -> list[Summary]:
        """Summaries of one workflow or all (counts from KV, problems from the read models)."""
        return await summaries(self.conn, self.settings, wf)

    async def wait(self, wf: str) -> Summary:
        """Wait until the workflow has finished; its summary."""
        record = await follow(self.conn, wf)
        (summary,) = await summaries(self.conn, self.settings, record.wf)
        return summary

    async def watch(self, wf: str) -> AsyncIterator[JobRecord | WorkflowRecord]:
        """Job state changes (and workflow summaries) as they happen, until it finishes."""
        async for change in watch_jobs(self.conn.js, wf):
            yield change

    async def events(self, wf: str, job: int | None = None) -> list[Stored]:
        """The recorded history of a workflow or one job, oldest first."""
        subject = workflow_filter(wf) if job is None else job_subject(wf, job)
        return [stored async for stored in read_until_caught_up(self.conn.js, subject)]

    async def sql(self, query: str, *, arrow: bool = False) -> Any:
        """Rows as a list of dicts, or a ``pyarrow.Table`` with ``arrow=True``."""
        table = await run_sql(self.conn, self.settings, query)
        return table if arrow else table.to_pylist()


__all__ = ["Client"]
