"""The scheduler's pure fold: which intents each fact triggers, and reconcile after replay."""

from __future__ import annotations

import msgspec

from jobstream.events import (
    JobBlocked,
    JobCanceled,
    JobClaimed,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobLost,
    JobReady,
    JobRestarted,
    JobRetryScheduled,
    JobStarted,
    JobSubmitted,
    WorkflowCompleted,
    WorkflowRestarted,
    WorkflowSubmitted,
)
from jobstream.model import JobDef, Resources, RetryRule
from jobstream.scheduler.service import CHUNK, CHUNK_S, FIRST_CHUNK, next_chunk_size
from jobstream.scheduler.state import (
    BlockIntent,
    CancelIntent,
    CompleteIntent,
    DispatchIntent,
    MakeReadyIntent,
    SchedulerState,
    pack_spec,
)

WF = "wf1"


def diamond(cancel_on_failure: bool = True) -> list[JobDef]:
    return [
        JobDef(index=0, name="pre", command="true"),
        JobDef(index=1, name="w1", command="true", depends_on=(0,)),
        JobDef(index=2, name="w2", command="true", depends_on=(0,)),
        JobDef(
            index=3,
            name="post",
            command="true",
            depends_on=(1, 2),
            cancel_on_blocking_job_failure=cancel_on_failure,
        ),
    ]


class Log:
    """A fake-free event log: sequences assigned in order, folded by the real state."""

    def __init__(self) -> None:
        self.state = SchedulerState()
        self.seq = 0
        self.events: list[tuple[int, object]] = []

    def add(self, event: object) -> list[object]:
        self.seq += 1
        self.events.append((self.seq, event))
        return list(self.state.apply(self.seq, event))  # type: ignore[arg-type]


def submitted(log: Log, jobs: list[JobDef]) -> list[object]:
    intents = log.add(
        WorkflowSubmitted(
            wf=WF, at=0, actor="u", name="d", user="u", spec_digest="x", job_count=len(jobs)
        )
    )
    for job in jobs:
        intents += log.add(JobSubmitted(wf=WF, job=job.index, at=0, actor="u", spec=job))
    return intents


def ran(log: Log, n: int, event_type: type[JobEvent] = JobCompleted) -> list[object]:
    log.add(JobReady(wf=WF, job=n, at=0, actor="s", pool="default", hardware_class="c"))
    log.add(JobClaimed(wf=WF, job=n, at=0, actor="w", worker="w", attempt=1, lease_s=5))
    log.add(JobStarted(wf=WF, job=n, at=0, actor="w", worker="w", attempt=1, pid=1, host="h"))
    return log.add(
        event_type(
            wf=WF,
            job=n,
            at=0,
            actor="w",
            worker="w",
            attempt=1,
            return_code=0 if event_type is JobCompleted else 1,
            exec_time_s=0,
        )
    )  # type: ignore[call-arg]


def test_submission_makes_roots_ready_and_blocks_the_rest() -> None:
    log = Log()
    intents = submitted(log, diamond())
    assert intents == [
        MakeReadyIntent(WF, 0),
        BlockIntent(WF, 1, (0,)),
        BlockIntent(WF, 2, (0,)),
        BlockIntent(WF, 3, (1, 2)),
    ]


def test_a_job_blocked_after_its_dependency_finished_is_made_ready() -> None:
    """Regression: the dependency completed between the Block decision and its JobBlocked
    being folded; the release found the job still submitted and the job stayed blocked."""
    log = Log()
    submitted(log, diamond()[:2])  # pre, and w1 waiting for it: BlockIntent for w1
    assert ran(log, 0) == []  # pre completes while w1 is still `submitted`
    assert log.add(JobBlocked(wf=WF, job=1, at=0, actor="s", unmet=(0,))) == [
        MakeReadyIntent(WF, 1)
    ]


def test_ready_is_dispatched_and_completion_releases_dependents() -> None:
    log = Log()
    submitted(log, diamond())
    for n in (1, 2, 3):
        log.add(JobBlocked(wf=WF, job=n, at=0, actor="s", unmet=(0,)))
    assert log.add(JobReady(wf=WF, job=0, at=0, actor="s", pool="p", hardware_class="c")) == [
        DispatchIntent(WF, 0, log.seq)
    ]
    log.add(JobClaimed(wf=WF, job=0, at=0, actor="w", worker="w", attempt=1, lease_s=5))
    released = log.add(
        JobCompleted(
            wf=WF, job=0, at=0, actor="w", worker="w", attempt=1, return_code=0, exec_time_s=0
        )
    )
    assert released == [MakeReadyIntent(WF, 1), MakeReadyIntent(WF, 2)]
    assert ran(log, 1) == []  # post still waits for w2
    assert ran(log, 2) == [MakeReadyIntent(WF, 3)]
    assert log.state.completions() == []  # post is not done
    ran(log, 3)
    assert log.state.completions() == [CompleteIntent(WF, {"completed": 4})]
    log.add(WorkflowCompleted(wf=WF, at=0, actor="s", counts={"completed": 4}))
    assert log.state.completions() == []


def test_failure_cancels_dependents_transitively_then_completes() -> None:
    log = Log()
    submitted(log, diamond())
    for n in (1, 2, 3):
        log.add(JobBlocked(wf=WF, job=n, at=0, actor="s", unmet=(0,)))
    assert ran(log, 0, JobFailed) == [
        CancelIntent(WF, 1, "dependency 'pre' failed"),
        CancelIntent(WF, 2, "dependency 'pre' failed"),
    ]
    assert log.state.completions() == []  # cancellations still pending
    cascade = log.add(JobCanceled(wf=WF, job=1, at=0, actor="s", reason="x"))
    assert cascade == [CancelIntent(WF, 3, "dependency 'w1' canceled")]
    log.add(JobCanceled(wf=WF, job=2, at=0, actor="s", reason="x"))
    log.add(JobCanceled(wf=WF, job=3, at=0, actor="s", reason="x"))
    assert log.state.completions() == [CompleteIntent(WF, {"failed": 1, "canceled": 3})]


def test_kept_blocked_job_does_not_hold_the_workflow_open() -> None:
    log = Log()
    submitted(log, diamond(cancel_on_failure=False))
    for n in (1, 2, 3):
        log.add(JobBlocked(wf=WF, job=n, at=0, actor="s", unmet=(0,)))
    ran(log, 0)
    ran(log, 1)
    assert ran(log, 2, JobFailed) == []  # post keeps waiting instead of being canceled
    assert log.state.completions() == [
        CompleteIntent(WF, {"blocked": 1, "completed": 2, "failed": 1})
    ]


def test_own_appends_are_not_applied_twice() -> None:
    log = Log()
    submitted(log, diamond())
    ready = JobReady(wf=WF, job=0, at=0, actor="s", pool="p", hardware_class="c")
    assert log.add(ready) == [DispatchIntent(WF, 0, log.seq)]
    assert log.state.apply(log.seq, ready) == []  # read back from the stream: a no-op


def test_reconcile_after_replay_finds_undone_work() -> None:
    log = Log()
    submitted(log, diamond())
    log.add(JobBlocked(wf=WF, job=1, at=0, actor="s", unmet=(0,)))
    # crash: job 0 ready but maybe not dispatched; 2 and 3 never decided
    log.add(JobReady(wf=WF, job=0, at=0, actor="s", pool="p", hardware_class="c"))
    ready_seq = log.seq
    fresh = SchedulerState()
    for seq, event in log.events:
        fresh.apply(seq, event)  # type: ignore[arg-type]
    assert fresh.reconcile() == [
        DispatchIntent(WF, 0, ready_seq),
        BlockIntent(WF, 2, (0,)),
        BlockIntent(WF, 3, (1, 2)),
    ]


def test_dependency_submitted_after_its_dependent() -> None:
    log = Log()
    jobs = [
        JobDef(index=0, name="late", command="true", depends_on=(1,)),
        JobDef(index=1, name="early", command="true"),
    ]
    assert submitted(log, jobs) == [BlockIntent(WF, 0, (1,)), MakeReadyIntent(WF, 1)]
    log.add(JobBlocked(wf=WF, job=0, at=0, actor="s", unmet=(1,)))
    assert ran(log, 1) == [MakeReadyIntent(WF, 0)]


def test_restart_reopens_the_workflow_and_reruns_in_dependency_order() -> None:
    log = Log()
    submitted(log, diamond())
    for n in (1, 2, 3):
        log.add(JobBlocked(wf=WF, job=n, at=0, actor="s", unmet=(0,)))
    ran(log, 0)
    ran(log, 1)
    ran(log, 2, JobFailed)
    log.add(JobCanceled(wf=WF, job=3, at=0, actor="s", reason="x"))
    assert log.state.completions() != []
    log.add(WorkflowCompleted(wf=WF, at=0, actor="s", counts={}))
    # the dependent's restart is read before its dependency's: it must wait, not cancel
    assert log.add(WorkflowRestarted(wf=WF, at=0, actor="u", jobs=(2, 3))) == []
    assert log.add(JobRestarted(wf=WF, job=3, at=0, actor="u", reason="r")) == [
        BlockIntent(WF, 3, (2,))
    ]
    assert log.state.completions() == []
    assert log.add(JobRestarted(wf=WF, job=2, at=0, actor="u", reason="r")) == [
        MakeReadyIntent(WF, 2)
    ]
    log.add(JobBlocked(wf=WF, job=3, at=0, actor="s", unmet=(2,)))
    assert ran(log, 2) == [MakeReadyIntent(WF, 3)]
    ran(log, 3)
    assert log.state.completions() == [CompleteIntent(WF, {"completed": 4})]


def test_held_specs_keep_only_what_differs_from_the_defaults() -> None:
    """Fields left at their defaults are not stored, and come back as those defaults."""
    every_field_set = JobDef(
        index=7,
        name="full",
        command="run.sh",
        resources=Resources(num_cpus=4, memory_mib=2048, num_gpus=1, runtime_s=60),
        resource_requirements="big",
        invocation_script="wrap.sh",
        env={"A": "1"},
        priority=3,
        depends_on=(1, 2),
        input_files=("in",),
        output_files=("out",),
        input_user_data=("ui",),
        output_user_data=("uo",),
        failure_handler="retry",
        retry_rules=(RetryRule(exit_codes=(3,), max_retries=1),),
        cancel_on_blocking_job_failure=False,
        pool="gpu",
    )
    defaults_only = JobDef(index=0, name="bare", command="true")
    with_defaults = [f.name for f in msgspec.structs.fields(JobDef) if f.required is False]
    assert all(getattr(every_field_set, n) != getattr(defaults_only, n) for n in with_defaults)
    log = Log()
    submitted(log, [defaults_only, every_field_set])
    track = log.state.track(WF)
    for spec in (every_field_set, defaults_only):
        assert track.specs[spec.index] == pack_spec(spec)
        assert track.spec(spec.index) == spec
    stored = msgspec.msgpack.decode(track.specs[0])
    assert stored == {"index": 0, "name": "bare", "command": "true"}


def test_chunks_double_while_quick_and_halve_when_slow() -> None:
    assert next_chunk_size(FIRST_CHUNK, 0.001) == 2 * FIRST_CHUNK
    assert next_chunk_size(CHUNK, 0.001) == CHUNK
    assert next_chunk_size(4 * FIRST_CHUNK, CHUNK_S) == 2 * FIRST_CHUNK
    assert next_chunk_size(FIRST_CHUNK, 10.0) == FIRST_CHUNK


def lost_at_100() -> Log:
    """Job 0 was claimed by w, and at t=100 another worker recorded it lost."""
    log = Log()
    submitted(log, diamond()[:1])
    log.add(JobReady(wf=WF, job=0, at=0, actor="s", pool="default", hardware_class="c"))
    log.add(JobClaimed(wf=WF, job=0, at=0, actor="w", worker="w", attempt=1, lease_s=5))
    log.add(JobLost(wf=WF, job=0, at=100.0, actor="v", worker="w", attempt=1, reason="lease"))
    return log


def test_a_half_done_takeover_is_found_once_its_claim_is_overdue() -> None:
    log = lost_at_100()
    lost_at = log.seq
    assert log.state.stranded(now=105.0, after_s=10.0) == []  # its JobClaimed may still come
    assert log.state.stranded(now=110.0, after_s=10.0) == [DispatchIntent(WF, 0, lost_at)]
    assert log.state.stranded(now=200.0, after_s=10.0) == []  # once


def test_a_completed_takeover_is_not_stranded() -> None:
    log = lost_at_100()
    log.add(JobClaimed(wf=WF, job=0, at=100.0, actor="v", worker="v", attempt=2, lease_s=5))
    assert log.state.stranded(now=500.0, after_s=10.0) == []


def retried(log: Log, retry_at: float) -> list[object]:
    """Job 0 ran and failed; its rule gives it another attempt at ``retry_at``."""
    log.add(JobReady(wf=WF, job=0, at=0, actor="s", pool="default", hardware_class="c"))
    log.add(JobClaimed(wf=WF, job=0, at=0, actor="w", worker="w", attempt=1, lease_s=5))
    return log.add(
        JobRetryScheduled(
            wf=WF, job=0, at=100.0, actor="w", worker="w", attempt=1, return_code=10,
            exec_time_s=1, rule=0, retry=1, retry_at=retry_at,
        )
    )  # fmt: skip


def test_a_retry_without_delay_is_made_ready_at_once() -> None:
    log = Log()
    submitted(log, diamond()[:1])
    assert retried(log, retry_at=0.0) == [MakeReadyIntent(WF, 0)]
    assert log.state.next_due() is None


def test_a_delayed_retry_is_made_ready_when_due_and_once() -> None:
    log = Log()
    submitted(log, diamond()[:1])
    assert retried(log, retry_at=130.0) == []
    assert log.state.next_due() == 130.0
    assert log.state.due(now=129.9) == []
    assert log.state.due(now=130.0) == [MakeReadyIntent(WF, 0)]
    assert log.state.due(now=500.0) == [] and log.state.next_due() is None


def test_a_delay_survives_a_replay() -> None:
    """A scheduler started during the delay waits for what is left of it."""
    log = Log()
    submitted(log, diamond()[:1])
    retried(log, retry_at=130.0)
    fresh = SchedulerState()
    for seq, event in log.events:
        fresh.apply(seq, event)  # type: ignore[arg-type]
    assert fresh.reconcile() == []
    assert fresh.due(now=120.0) == []
    assert fresh.due(now=131.0) == [MakeReadyIntent(WF, 0)]
    assert fresh.due(now=131.0) == []


def test_a_delayed_retry_canceled_meanwhile_is_not_made_ready() -> None:
    log = Log()
    submitted(log, diamond()[:1])
    retried(log, retry_at=130.0)
    log.add(JobCanceled(wf=WF, job=0, at=110.0, actor="u", reason="by user"))
    assert log.state.due(now=131.0) == []
