"""The event store against a real server: CAS, dedup, reading back in order."""

from __future__ import annotations

import anyio
import pytest
from nats.js import api
from nats.js.errors import APIError

from jobstream.decide import Claim, Job, MakeReady, Submit, decide
from jobstream.errors import ServerError
from jobstream.events import JobClaimed
from jobstream.model import JobDef, JobState
from jobstream.streams import pipeline
from jobstream.streams.connection import Connection
from jobstream.streams.reader import read_until_caught_up
from jobstream.streams.store import Conflict, EventStore
from jobstream.streams.subjects import job_event_subject, job_subjects

SPEC = JobDef(index=0, name="j", command="true")


async def ready_job(store: EventStore) -> tuple[Job, int]:
    job = Job(wf="wfa", index=0)
    (submitted,) = decide(job, Submit(at=1, actor="u", spec=SPEC))
    seq = await store.append(submitted, 0)
    job = Job(wf="wfa", index=0, state=JobState.SUBMITTED, spec=SPEC)
    (ready,) = decide(job, MakeReady(at=2, actor="s", pool="default", hardware_class="c"))
    seq = await store.append(ready, seq)
    return Job(wf="wfa", index=0, state=JobState.READY, spec=SPEC), seq


async def test_second_concurrent_claim_is_rejected_by_the_server(conn: Connection) -> None:
    store = EventStore(conn.js, conn.pipeline)
    job, ready_seq = await ready_job(store)
    claims = [decide(job, Claim(at=3, actor=w, worker=w, lease_s=30))[0] for w in ("w1", "w2")]
    outcomes: dict[str, int | Exception] = {}

    async def claim(event: JobClaimed) -> None:
        try:
            outcomes[event.worker] = await store.append(event, ready_seq)
        except Conflict as exc:
            outcomes[event.worker] = exc

    async with anyio.create_task_group() as tg:
        for event in claims:
            tg.start_soon(claim, event)
    winners = [w for w, o in outcomes.items() if isinstance(o, int)]
    losers = [w for w, o in outcomes.items() if isinstance(o, Conflict)]
    assert len(winners) == 1 and len(losers) == 1
    last = await store.last(job_subjects("wfa", 0))
    assert last is not None and isinstance(last.event, JobClaimed)
    assert last.event.worker == winners[0]


async def test_retried_append_is_deduplicated(conn: Connection) -> None:
    store = EventStore(conn.js, conn.pipeline)
    job, ready_seq = await ready_job(store)
    (claim,) = decide(job, Claim(at=3, actor="w1", worker="w1", lease_s=30))
    first = await store.append(claim, ready_seq)
    again = await store.append(claim, ready_seq)  # same decision, e.g. after a lost ack
    assert again == first
    history = [s async for s in read_until_caught_up(conn.js, job_subjects("wfa", 0))]
    assert [type(s.event).__name__ for s in history] == ["JobSubmitted", "JobReady", "JobClaimed"]


async def test_stale_expected_sequence_conflicts(conn: Connection) -> None:
    store = EventStore(conn.js, conn.pipeline)
    job, ready_seq = await ready_job(store)
    (claim,) = decide(job, Claim(at=3, actor="w1", worker="w1", lease_s=30))
    with pytest.raises(Conflict):
        await store.append(claim, ready_seq - 1)


async def test_pipelined_refusal_is_reported_not_lost(conn: Connection) -> None:
    """Regression: nats-py's publish_async never resolves a refused publish (it raises in
    its reply handler); the scheduler then hung on its first CAS conflict."""
    store = EventStore(conn.js, conn.pipeline)
    job, ready_seq = await ready_job(store)
    ours, theirs = (
        decide(job, Claim(at=3, actor=w, worker=w, lease_s=30))[0] for w in ("w1", "w2")
    )
    await store.append(theirs, ready_seq)
    with anyio.fail_after(5):
        (result,) = await store.append_many([(ours, ready_seq)])
    assert isinstance(result, Conflict)


async def test_same_actor_with_another_nonce_is_not_taken_for_its_own_append(
    conn: Connection,
) -> None:
    """Regression: two deliveries of one dispatch to the same worker wrote the same msg-id,
    so the second claim was "recognised" as the first and the job ran twice."""
    store = EventStore(conn.js, conn.pipeline)
    job, ready_seq = await ready_job(store)
    (claim,) = decide(job, Claim(at=3, actor="w1", worker="w1", lease_s=30))
    first = await store.append(claim, ready_seq, nonce="7.1")
    assert await store.append(claim, ready_seq, nonce="7.1") == first  # a retry: recognised
    with pytest.raises(Conflict):
        await store.append(claim, ready_seq, nonce="7.2")  # another delivery: refused


async def test_pipeline_sends_header_names_of_nats_py_by_their_value(conn: Connection) -> None:
    """The pipeline frames messages itself; nats-py's header names are a str enum that
    formats as ``Header.MSG_ID``, which would silently switch CAS and dedup off."""
    subject = job_event_subject("wfh", 0, "JobReady")
    sent = await conn.pipeline.publish(
        subject, b"{}", {api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE: "99"}
    )
    with pytest.raises(APIError) as refused:
        await conn.pipeline.ack(sent)
    assert refused.value.err_code == 10071  # wrong last sequence: the header arrived


async def test_pipeline_fails_a_publish_larger_than_the_server_takes(conn: Connection) -> None:
    too_big = b"x" * (conn.nc.max_payload + 1)
    sent = await conn.pipeline.publish(job_event_subject("wfh", 1, "JobReady"), too_big)
    with anyio.fail_after(5), pytest.raises(ServerError, match="maximum payload"):
        await conn.pipeline.ack(sent)
    fine = await conn.pipeline.publish(job_event_subject("wfh", 1, "JobReady"), b"{}")
    assert await conn.pipeline.ack(fine) > 0  # the refusal did not take others with it


async def test_pipeline_fails_a_publish_that_is_never_answered(
    conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost acknowledgement must not hang the caller: here the subject is a plain
    subscriber's, which never answers; the other publishes are answered meanwhile."""
    monkeypatch.setattr(pipeline, "ACK_TIMEOUT_S", 0.5)
    silent = await conn.nc.subscribe("not.a.stream")
    lost = await conn.pipeline.publish("not.a.stream", b"{}")
    fine = await conn.pipeline.publish(job_event_subject("wfh", 2, "JobReady"), b"{}")
    assert await conn.pipeline.ack(fine) > 0
    with anyio.fail_after(5), pytest.raises(ServerError, match="did not acknowledge"):
        await conn.pipeline.ack(lost)
    assert not conn.pipeline.futures  # its room is given back
    await silent.unsubscribe()
