"""A job whose event would not fit in a server message is refused before anything is
appended, naming the job (before: a 181-line traceback after the workflow's first events
were stored, and a workflow that could not be canceled)."""

from __future__ import annotations

import pytest

from jobstream.model import JobDef, Resources, WorkflowDef
from jobstream.ops.submit import TooLarge, submit_workflow
from jobstream.streams.connection import Connection
from jobstream.streams.subjects import EVENTS_STREAM

from .helpers import workflow


async def test_an_oversized_job_is_refused_before_the_first_append(conn: Connection) -> None:
    small = workflow(*((f"j{i}", "true", ()) for i in range(3))).jobs
    huge = JobDef(index=3, name="huge", command="echo " + "x" * 5_000_000, resources=Resources())
    before = (await conn.js.stream_info(EVENTS_STREAM)).state.messages
    with pytest.raises(TooLarge, match=r"job 'huge' \(index 3\) would be an event of 5,000,"):
        await submit_workflow(conn, WorkflowDef(name="big", jobs=(*small, huge)), workdir=".")
    assert (await conn.js.stream_info(EVENTS_STREAM)).state.messages == before


async def test_an_oversized_workflow_event_is_refused(conn: Connection) -> None:
    extras = {"notes": "y" * 2_000_000}
    spec = WorkflowDef(name="big", jobs=workflow(("a", "true", ())).jobs, extras=extras)
    with pytest.raises(TooLarge, match="the workflow's own event"):
        await submit_workflow(conn, spec, workdir=".")
    assert (await conn.js.stream_info(EVENTS_STREAM)).state.messages == 0
