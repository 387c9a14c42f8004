"""Folding hand-made batches into DuckDB: rare events' own fields, and bad payloads that
must not stop the events around them."""

from __future__ import annotations

import json

import pytest

from jobstream.codec import VERSION_HEADER
from jobstream.projections.duck import SKIPPED_LOGGED, DuckStore
from jobstream.streams.subjects import job_event_subject, worker_subjects, workflow_subjects
from jobstream.streams.wire import RawBatch

WF = "wf1"


def batch(*payloads: bytes | dict[str, object], first: int = 1) -> RawBatch:
    data = [p if isinstance(p, bytes) else json.dumps(p).encode() for p in payloads]
    seqs = list(range(first, first + len(data)))
    subjects = [subject_of(p) for p in payloads]
    return RawBatch(seqs, subjects, [None for _ in seqs], data, True)


def subject_of(payload: bytes | dict[str, object]) -> str:
    """The subject an event is stored on (a job's, for a payload that is not one)."""
    if isinstance(payload, bytes):
        return job_event_subject(WF, 0, "JobSubmitted")
    kind, job = str(payload["type"]), payload.get("job")
    if isinstance(job, int):
        return job_event_subject(WF, job, kind)
    if "worker" in payload and kind.startswith("Worker"):
        return worker_subjects(str(payload["worker"]))[:-1] + kind
    return workflow_subjects(str(payload.get("wf", WF)))[:-1] + kind


def submitted(**fields: object) -> dict[str, object]:
    return {
        "type": "WorkflowSubmitted", "at": 1.0, "actor": "user:u", "wf": WF, "name": "n",
        "user": "u", "description": "", "spec_digest": "d", "job_count": 1, "workdir": "/w",
        "files": {}, "user_data": {}, "extras": {}, **fields,
    }  # fmt: skip


def job_submitted(job: int) -> dict[str, object]:
    spec = {"index": job, "name": f"j{job}", "command": "true", "pool": "default", "priority": 0,
            "depends_on": [], "resources": {"num_cpus": 1}}  # fmt: skip
    return {"type": "JobSubmitted", "at": 2.0, "actor": "user:u", "wf": WF, "job": job,
            "spec": spec}  # fmt: skip


def rows(store: DuckStore, sql: str) -> list[tuple[object, ...]]:
    return [tuple(row.values()) for row in store.query(sql).to_pylist()]


def test_workflow_files_user_data_and_workers_fold_from_their_own_fields() -> None:
    store = DuckStore(":memory:")
    worker = {
        "type": "WorkerStarted", "at": 3.0, "actor": "compute:w", "worker": "w", "host": "h",
        "capacity": {"num_cpus": 4, "memory_mib": 2048, "num_gpus": 1}, "pools": ["a", "b"],
        "walltime_s": 60.0,
    }  # fmt: skip
    files = {"in": "/data/in.csv", "out": "/data/out.csv"}
    store.apply(batch(submitted(files=files, user_data={"p": {"x": [1, 2]}}), worker))
    assert rows(store, "SELECT name, user, job_count, workdir FROM workflows") == [
        ("n", "u", 1, "/w")
    ]
    assert rows(store, "SELECT name, path FROM files ORDER BY name") == sorted(files.items())
    assert rows(store, "SELECT name, data FROM user_data") == [("p", '{"x":[1,2]}')]
    assert rows(store, "SELECT num_cpus, memory_mib, num_gpus, pools, walltime_s FROM workers") == [
        (4, 2048, 1, "a,b", 60.0)
    ]


def test_bad_events_are_skipped_and_logged_and_the_events_around_them_fold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As the scheduler's decoder skips them: malformed JSON, not an object, a field of
    the wrong type, an unknown type, a version header that is not a number."""
    store = DuckStore(":memory:")
    raw = batch(
        submitted(),
        job_submitted(0),
        b"{not json",
        b"[1, 2]",
        {**job_submitted(2), "job": "two"},
        {**job_submitted(3), "type": "JobVanished"},
        job_submitted(4),
        job_submitted(1),
    )
    raw.headers[6] = {VERSION_HEADER: "x"}
    store.apply(raw)
    assert store.checkpoint() == 8
    assert rows(store, "SELECT job, name FROM jobs ORDER BY job") == [(0, "j0"), (1, "j1")]
    assert rows(store, "SELECT seq FROM events ORDER BY seq") == [(1,), (2,), (8,)]
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped: EVENTS#{seq} is not a well-formed event" for seq in range(3, 8)
    ]
    store.apply(batch(job_submitted(5), first=9))  # the next batch, with nothing wrong
    assert rows(store, "SELECT count(*) FROM jobs") == [(3,)]


def test_a_batch_ending_in_a_malformed_event_still_moves_the_checkpoint() -> None:
    store = DuckStore(":memory:")
    store.apply(batch(submitted(), b"\xff\xfe"))
    assert store.checkpoint() == 2


def test_a_batch_of_bad_events_is_logged_in_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = DuckStore(":memory:")
    store.apply(batch(*[b"{not json" for _ in range(SKIPPED_LOGGED + 5)], submitted()))
    assert store.checkpoint() == SKIPPED_LOGGED + 6
    assert len(caplog.records) == SKIPPED_LOGGED + 1
    assert caplog.records[-1].getMessage() == (
        f"skipped: 5 more events of this batch that are not well formed, up to "
        f"EVENTS#{SKIPPED_LOGGED + 5}"
    )
    assert rows(store, "SELECT name FROM workflows") == [("n",)]


def test_a_staged_batch_folds_only_what_was_not_folded_since_it_was_staged() -> None:
    """A replay stages each batch while the one before is folded: events that a fold in
    between already covered are not folded twice (nor is a batch it covered whole)."""
    store = DuckStore(":memory:")
    later = store.stage(batch(*(job_submitted(n) for n in (3, 4, 5)), first=4))  # seqs 4-6
    covered = store.stage(batch(job_submitted(9), first=3))
    assert later is not None and covered is not None
    store.apply(batch(submitted(), *(job_submitted(n) for n in range(4)), first=1))  # 1-5
    assert store.fold(covered) is None
    store.fold(later)
    assert rows(store, "SELECT seq FROM events ORDER BY seq") == [(s,) for s in range(1, 7)]
    assert rows(store, "SELECT job FROM jobs ORDER BY job") == [(0,), (1,), (2,), (3,), (5,)]
    assert store.checkpoint() == 6
