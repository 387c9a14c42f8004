"""Any message on the event stream: decoded, or reported as ill-formed — and every
reader agrees which.

A plain NATS client may publish anything on ``ev.>``. The decoder must answer with an
event or :class:`MalformedEvent`; the scheduler's fold must survive any event it
decodes; the projector, which folds in SQL, must fold exactly the messages the decoder
accepts and the scheduler folds (a reader that counted one the others skipped would show
a history that the scheduler never saw).
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from jobstream import codec
from jobstream.projections.duck import DuckStore
from jobstream.scheduler.state import SchedulerState
from jobstream.streams.layout import upgraded_subject
from jobstream.streams.reader import decode_batch
from jobstream.streams.wire import RawBatch

from .strategies import JSON_VALUES, mutated

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
LOG = [
    {**m, "subject": upgraded_subject(m["subject"], m["headers"], m["data"].encode())}
    for m in map(json.loads, (GOLDEN / "logs" / "failure_cascade.jsonl").open())
]
SAMPLES = [json.loads(path.read_text()) for path in sorted((GOLDEN / "events").glob("*.json"))]
EVENT_KEYS = (
    "type", "at", "actor", "wf", "job", "attempt", "worker", "spec", "return_code",
    "rule", "retry", "retry_at", "unmet", "counts", "jobs", "job_count", "lease_s",
)  # fmt: skip
HEADERS = st.none() | st.fixed_dictionaries(
    {
        "Jobstream-Type": st.text(max_size=20),
        "Jobstream-Version": st.sampled_from(["1", "0", "x", ""]),
    }
)


@given(data=st.binary(max_size=300), headers=HEADERS)
def test_any_bytes_decode_or_are_malformed(data: bytes, headers: dict[str, str] | None) -> None:
    try:
        codec.decode(data, headers, "EVENTS#1")
    except codec.MalformedEvent as exc:
        assert "EVENTS#1" in str(exc)


@st.composite
def hostile_payloads(draw: st.DrawFn) -> bytes:
    """A recorded event with some of its fields changed, removed or added, or any JSON."""
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        return json.dumps(draw(JSON_VALUES)).encode()
    sample = draw(st.sampled_from(SAMPLES))
    document = draw(mutated(sample, EVENT_KEYS)) if draw(st.booleans()) else sample
    return json.dumps(document).encode()


@given(payload=hostile_payloads())
def test_changed_events_decode_or_are_malformed(payload: bytes) -> None:
    try:
        event = codec.decode(payload, {"Jobstream-Version": "1"})
    except codec.MalformedEvent:
        return
    SchedulerState().apply(1, event)  # folding a decoded event never fails


@st.composite
def hostile_logs(draw: st.DrawFn) -> RawBatch:
    """The recorded log with some of its messages replaced by hostile payloads (on the
    same subjects), a few duplicated or moved: what a plain NATS client can make."""
    messages = [dict(m) for m in LOG]
    for index in draw(st.sets(st.integers(min_value=0, max_value=len(LOG) - 1), max_size=5)):
        messages[index]["data"] = draw(hostile_payloads()).decode()
    if draw(st.booleans()):
        order = draw(st.permutations(range(len(messages))))
        messages = [messages[i] for i in order[: draw(st.integers(1, len(messages)))]]
    return RawBatch(
        seqs=list(range(1, len(messages) + 1)),
        subjects=[m["subject"] for m in messages],
        headers=[m["headers"] for m in messages],
        payloads=[m["data"].encode() for m in messages],
        caught_up=True,
    )


@given(raw=hostile_logs())
def test_the_projector_folds_exactly_what_the_scheduler_folds(raw: RawBatch) -> None:
    """The decoder's events less those out of place (about a job not submitted before)."""
    scheduler = SchedulerState()
    for stored in decode_batch(raw).events:
        scheduler.apply(stored.seq, stored.event)
    strays = {stray.seq for stray in scheduler.out_of_place}
    store = DuckStore(":memory:")
    try:
        store.apply(raw)
        folded = [
            row["seq"] for row in store.query("SELECT seq FROM events ORDER BY seq").to_pylist()
        ]
        assert store.checkpoint() == raw.seqs[-1]  # every sequence accounted for
    finally:
        store.close()
    assert folded == [s.seq for s in decode_batch(raw).events if s.seq not in strays]
