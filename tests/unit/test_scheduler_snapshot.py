"""A scheduler restored from a snapshot at any point and fed the rest of the log holds
the same state as one that replayed the whole log (completed workflows let go of, in
both), and a snapshot of another log or partition is not used."""

from __future__ import annotations

import time

import pytest
from benchmarks.projection import lifecycle

from jobstream.events import Event, WorkflowCompleted, WorkflowSubmitted
from jobstream.scheduler.partition import WHOLE_LOG, Partition
from jobstream.scheduler.snapshot import restore, take
from jobstream.scheduler.state import SchedulerState

LOG = "2026-12-07 00:00:00+00:00"


def history() -> list[tuple[int, Event]]:
    """Two workflows: ``done`` (3 jobs, completed) and ``open`` (4 jobs, 2 completed)."""
    now = time.time()
    events: list[Event] = []
    for wf, jobs in (("done", 3), ("open", 4)):
        events.append(
            WorkflowSubmitted(
                wf=wf, at=now, actor="user:t", name=wf, user="t", spec_digest="-", job_count=jobs
            )
        )
    for n in range(3):
        events += lifecycle("done", n, now)
    events.append(WorkflowCompleted(wf="done", at=now, actor="scheduler", counts={"completed": 3}))
    for n in range(4):
        events += lifecycle("open", n, now)[: 5 if n < 2 else 2]
    return list(enumerate(events, 1))


def folded(events: list[tuple[int, Event]], state: SchedulerState | None = None) -> SchedulerState:
    state = state or SchedulerState()
    for seq, event in events:
        state.apply(seq, event)
    return state


def snapshot(state: SchedulerState, read_to: int) -> bytes:
    return take(state, WHOLE_LOG, LOG, read_to)


@pytest.mark.parametrize("cut", [0, 1, 7, 17, 20, 25, 28])
def test_restored_and_replayed_equals_replayed(cut: int) -> None:
    events = history()
    whole = folded(events)
    restored = restore(snapshot(folded(events[:cut]), cut), WHOLE_LOG, LOG, len(events))
    assert restored is not None
    rest = folded(events[cut:], restored)
    assert snapshot(rest, len(events)) == snapshot(whole, len(events))
    assert "done" in rest.finished and set(rest.workflows) == {"open"}


def test_an_own_append_folded_early_does_not_hide_the_events_before_it() -> None:
    """The scheduler folds its own append (here #25) when it is acknowledged, before the
    others' events #21..#24 are read: a snapshot then covers #20, not #25."""
    events = history()
    early = folded(events[:20])
    early.apply(*events[24])
    restored = restore(snapshot(early, 20), WHOLE_LOG, LOG, len(events))
    assert restored is not None
    rest = folded(events[20:], restored)  # #25 again: a no-op
    assert snapshot(rest, len(events)) == snapshot(folded(events), len(events))


def test_a_snapshot_of_another_log_or_partition_is_not_used() -> None:
    data = snapshot(folded(history()), len(history()))
    assert restore(data, WHOLE_LOG, "another log", 100) is None
    assert restore(data, Partition(0, 2), LOG, 100) is None
    assert restore(data, WHOLE_LOG, LOG, 3) is None  # ahead of the stream: not of it
    assert restore(b"\x93garbage", WHOLE_LOG, LOG, 100) is None


def test_a_workflow_let_go_of_and_read_back_is_as_it_was() -> None:
    events = history()
    kept = folded(events)
    evicted = folded(events)
    assert evicted.evict_completed() == 1 and "done" not in evicted.workflows
    evicted.reload("done", [(seq, e) for seq, e in events if e.wf == "done"])
    assert "done" not in evicted.finished
    assert evicted.workflows["done"] == kept.workflows["done"]
    assert evicted.last_seq == kept.last_seq
