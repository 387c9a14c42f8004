"""Golden files: every event version ever written keeps decoding, and a recorded log keeps
folding to the same read models (the Temporal-style replay test)."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from msgspec.structs import astuple

from jobstream import codec
from jobstream.events import AnyEvent
from jobstream.projections.duck import TABLES, DuckStore
from jobstream.projections.service import cut
from jobstream.scheduler.state import SchedulerState
from jobstream.streams.layout import upgraded_subject
from jobstream.streams.reader import decode_batch
from jobstream.streams.wire import RawBatch
from jobstream.views.audit import WorkflowAudit

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SAMPLES = sorted((GOLDEN / "events").glob("*.json"))
EVENT_TYPES = {t.__name__: t for t in typing.get_args(AnyEvent)}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_golden_event_decodes(path: Path) -> None:
    type_name, version = path.stem.split(".v")
    data = path.read_bytes()
    event = codec.decode(data, {codec.TYPE_HEADER: type_name, codec.VERSION_HEADER: version})
    assert type(event).__name__ == type_name
    if int(version) == type(event).VERSION:
        # Additive evolution: today's encoding keeps every field of the sample as it was.
        again = json.loads(codec.encode(event))
        assert _contains(again, json.loads(data))


def _contains(value: object, sample: object) -> bool:
    if isinstance(sample, dict):
        return isinstance(value, dict) and all(
            k in value and _contains(value[k], v) for k, v in sample.items()
        )
    return value == sample


def test_every_event_type_has_a_golden_sample() -> None:
    current = {f"{name}.v{t.VERSION}.json" for name, t in EVENT_TYPES.items()}
    assert current <= {p.name for p in SAMPLES}


def test_malformed_event_is_reported_with_its_sequence() -> None:
    with pytest.raises(codec.MalformedEvent, match="EVENTS#7"):
        codec.decode(b'{"type": "JobReady", "wf": 3}', {}, "EVENTS#7")


def recorded(name: str) -> RawBatch:
    """A recorded log as a server holds it today: logs recorded in subject layout 1 are
    read as the upgrade at a server's start rewrites them (streams/layout.py)."""
    lines = [json.loads(x) for x in (GOLDEN / "logs" / f"{name}.jsonl").read_text().splitlines()]
    return RawBatch(
        [x["seq"] for x in lines],
        [upgraded_subject(x["subject"], x["headers"], x["data"].encode()) for x in lines],
        [x["headers"] for x in lines],
        [x["data"].encode() for x in lines],
        True,
    )


def test_recorded_log_folds_to_the_recorded_read_models() -> None:
    log = recorded("failure_cascade")
    store = DuckStore(":memory:")
    for start in range(0, len(log.seqs), 4):  # batch boundaries must not matter
        store.apply(cut(RawBatch(*(column[start:] for column in astuple(log)[:4]), False), 4))
    store.apply(log)  # a full redelivery changes nothing
    tables = {t: store.query(f"SELECT * FROM {t} ORDER BY ALL").to_pylist() for t in TABLES}
    expected = json.loads((GOLDEN / "logs" / "failure_cascade.tables.json").read_text())
    for row in expected["events"]:  # recorded in layout 1: the upgrade renames subjects only
        row["subject"] = upgraded_subject(row["subject"], {codec.TYPE_HEADER: row["type"]}, b"")
    assert json.loads(json.dumps(tables, default=str)) == expected
    assert counted(store) == counted_from_jobs(store)  # kept by each batch's changes


def counted(store: DuckStore) -> list[dict[str, object]]:
    sql = "SELECT wf, state, jobs FROM job_counts WHERE jobs > 0 ORDER BY ALL"
    return store.query(sql).to_pylist()


def counted_from_jobs(store: DuckStore) -> list[dict[str, object]]:
    sql = "SELECT wf, state, count(*) AS jobs FROM jobs GROUP BY ALL ORDER BY ALL"
    return store.query(sql).to_pylist()


def test_a_file_from_before_the_job_counts_gets_them_when_opened(tmp_path: Path) -> None:
    store = DuckStore(tmp_path / "old.duckdb")
    store.apply(recorded("failure_cascade"))
    store.db.execute("DROP TABLE job_counts")
    store.close()
    store = DuckStore(tmp_path / "old.duckdb")
    assert counted(store) == counted_from_jobs(store) != []
    (workflow,) = store.records_after(0).workflows
    assert workflow.counts == {"completed": 2, "failed": 1, "canceled": 2}


def test_recorded_log_folds_to_a_finished_schedule_and_status() -> None:
    events = decode_batch(recorded("failure_cascade")).events
    state = SchedulerState()
    for stored in events:
        state.apply(stored.seq, stored.event)
    assert state.reconcile() == []  # nothing left to do after replay
    assert state.completions() == []  # WorkflowCompleted is already in the log
    (wf,) = state.workflows
    status = WorkflowAudit(wf)
    for stored in events:
        status.apply(stored.event)
    assert status.finished and not status.succeeded()
    assert {k: v for k, v in status.counts().items() if v} == {
        "completed": 2,
        "failed": 1,
        "canceled": 2,
    }


def test_old_versions_are_upcast_on_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A v1 JobCanceled that named its reason ``why`` reads as today's JobCanceled."""

    def rename_why(raw: dict[str, object]) -> dict[str, object]:
        return {**{k: v for k, v in raw.items() if k != "why"}, "reason": raw["why"]}

    monkeypatch.setitem(codec.UPCASTERS, ("JobCanceled", 1), rename_why)
    old = b'{"type":"JobCanceled","wf":"w","job":1,"at":1.0,"actor":"u","why":"user"}'
    event = codec.decode(old, {codec.TYPE_HEADER: "JobCanceled", codec.VERSION_HEADER: "1"})
    assert event.reason == "user"  # type: ignore[union-attr]
