"""The job repository against a real server: a decision on a stale version is refused,
a retried command decides again on the job as it is, and a batch reports each item."""

from __future__ import annotations

import pytest

from jobstream.decide import Block, Cancel, MakeReady
from jobstream.errors import IllegalTransition
from jobstream.events import JobCanceled
from jobstream.model import JobState
from jobstream.ops.submit import submit_workflow
from jobstream.streams.connection import Connection
from jobstream.streams.store import Conflict, Stored

from .helpers import histories, types, workflow


def cancel(job: object) -> Cancel:
    return Cancel(at=1.0, actor="user:t", reason="test")


async def test_a_stale_decision_is_refused_and_a_handled_one_decides_again(
    conn: Connection,
) -> None:
    wf = await submit_workflow(conn, workflow(("a", "true", ())), workdir=".")
    stale = await conn.jobs.load(wf, 0)
    assert stale is not None and stale.job.state is JobState.SUBMITTED
    blocked = await conn.jobs.execute(stale, Block(at=1.0, actor="scheduler", unmet=(7,)))
    assert blocked.job.state is JobState.BLOCKED and blocked.seq > stale.seq
    with pytest.raises(Conflict):
        await conn.jobs.execute(stale, Cancel(at=1.0, actor="user:t", reason="stale"))
    handled = await conn.jobs.handle(wf, 0, cancel)
    assert handled is not None and handled.before == blocked
    assert handled.after.job.state is JobState.CANCELED
    with pytest.raises(IllegalTransition):  # canceled is terminal
        await conn.jobs.handle(wf, 0, cancel)
    assert await conn.jobs.handle(wf, 1, cancel) is None  # no such job
    assert types((await histories(conn, wf))[0]) == ["JobSubmitted", "JobBlocked", "JobCanceled"]


async def test_a_batch_says_per_item_what_was_stored(conn: Connection) -> None:
    wf = await submit_workflow(
        conn, workflow(("a", "true", ()), ("b", "true", ()), ("c", "true", ())), workdir="."
    )
    versions = [await conn.jobs.load(wf, n) for n in range(3)]
    assert all(v is not None for v in versions)
    a, b, c = (v for v in versions if v is not None)
    await conn.jobs.execute(b, Cancel(at=1.0, actor="user:t", reason="first"))  # b is stale now
    ready = MakeReady(at=1.0, actor="scheduler", pool="default", hardware_class="c1")
    done = await conn.jobs.execute(c, Cancel(at=1.0, actor="user:t", reason="done"))
    results = await conn.jobs.execute_many([(a, ready), (b, ready), (done, ready)])
    stored, refused, illegal = results
    assert isinstance(stored, Stored) and stored.event.job == 0
    assert isinstance(refused, Conflict)
    assert isinstance(illegal, IllegalTransition)
    found = await histories(conn, wf)
    assert types(found[0])[-1] == "JobReady"
    assert isinstance(found[1][-1], JobCanceled) and isinstance(found[2][-1], JobCanceled)
