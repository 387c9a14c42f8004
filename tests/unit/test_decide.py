"""The job state machine, as tables: every command in every state is legal or refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobstream.decide import (
    ALLOWED,
    AnyCommand,
    Block,
    Cancel,
    Claim,
    Finish,
    Job,
    MakeReady,
    Reclaim,
    Restart,
    Start,
    Submit,
    Terminate,
    decide,
    evolve,
    fold,
    from_last_event,
)
from jobstream.errors import IllegalTransition
from jobstream.events import (
    ATTEMPT_FIELDS,
    JobBlocked,
    JobCanceled,
    JobClaimed,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobLost,
    JobReady,
    JobRetryScheduled,
    JobSubmitted,
    JobTimedOut,
)
from jobstream.model import TERMINAL, JobDef, JobState

SPEC = JobDef(index=3, name="j", command="true")
W = "w1"


def job_in(state: JobState | None, worker: str | None = W, attempt: int = 1) -> Job:
    return Job(wf="wf", index=3, state=state, worker=worker, attempt=attempt, spec=SPEC)


def commands() -> list[AnyCommand]:
    return [
        Submit(at=1.0, actor="u", spec=SPEC),
        Block(at=1.0, actor="s", unmet=(1, 2)),
        MakeReady(at=1.0, actor="s", pool="default", hardware_class="c1.m1024.g0.n1.t3600"),
        Claim(at=1.0, actor=W, worker=W, lease_s=30.0),
        Start(at=1.0, actor=W, worker=W, pid=42, host="h"),
        Finish(at=1.0, actor=W, worker=W, attempt=1, return_code=0, exec_time_s=0.1),
        Cancel(at=1.0, actor="u", reason="user"),
        Reclaim(at=1.0, actor="w2", worker="w2", lease_s=30.0),
        Restart(at=1.0, actor="u"),
        Terminate(
            at=1.0, actor=W, worker=W, attempt=1, reason="stop", return_code=-15, exec_time_s=1.0
        ),
    ]


STATES: list[JobState | None] = [None, *JobState]


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.value if s else "none")
@pytest.mark.parametrize("command", commands(), ids=lambda c: type(c).__name__)
def test_every_command_in_every_state(state: JobState | None, command: AnyCommand) -> None:
    job = job_in(state)
    if state in ALLOWED[type(command)]:
        events = decide(job, command)
        assert 1 <= len(events) <= 2
        for event in events:
            assert event.wf == "wf" and event.job == 3 and event.at == 1.0
            job = evolve(job, event)
    else:
        with pytest.raises(IllegalTransition, match="not allowed"):
            decide(job, command)


def test_terminal_states_accept_only_a_restart() -> None:
    for state in TERMINAL:
        for command in commands():
            if isinstance(command, Restart) and state is not JobState.COMPLETED:
                continue
            with pytest.raises(IllegalTransition):
                decide(job_in(state), command)


@pytest.mark.parametrize(
    ("command", "expected_type", "expected_state"),
    [
        (Submit(at=0, actor="u", spec=SPEC), JobSubmitted, JobState.SUBMITTED),
        (Block(at=0, actor="s", unmet=(1,)), JobBlocked, JobState.BLOCKED),
        (MakeReady(at=0, actor="s", pool="p", hardware_class="c"), JobReady, JobState.READY),
        (Cancel(at=0, actor="u", reason="r"), JobCanceled, JobState.CANCELED),
    ],
)
def test_scheduler_commands(
    command: AnyCommand, expected_type: type, expected_state: JobState
) -> None:
    start = None if isinstance(command, Submit) else JobState.SUBMITTED
    (event,) = decide(job_in(start), command)
    assert type(event) is expected_type
    assert evolve(job_in(start), event).state is expected_state


def test_claim_starts_next_attempt_and_records_worker() -> None:
    (event,) = decide(
        job_in(JobState.READY, worker=None, attempt=2),
        Claim(at=0, actor="w9", worker="w9", lease_s=10),
    )
    assert isinstance(event, JobClaimed) and event.attempt == 3 and event.worker == "w9"
    job = evolve(job_in(JobState.READY), event)
    assert (job.state, job.attempt, job.worker) == (JobState.CLAIMED, 3, "w9")


@pytest.mark.parametrize(
    ("return_code", "timed_out", "expected"),
    [
        (0, False, JobCompleted),
        (1, False, JobFailed),
        (-9, False, JobFailed),
        (0, True, JobTimedOut),
    ],
)
def test_finish_says_why(return_code: int, timed_out: bool, expected: type) -> None:
    finish = Finish(
        at=0,
        actor=W,
        worker=W,
        attempt=1,
        return_code=return_code,
        exec_time_s=2.0,
        timed_out=timed_out,
    )
    (event,) = decide(job_in(JobState.RUNNING), finish)
    assert type(event) is expected
    assert event.return_code == return_code and event.exec_time_s == 2.0


@pytest.mark.parametrize(("delay_s", "retry_at"), [(0.0, 0.0), (40.0, 140.0)])
def test_a_retry_says_when_it_is_due(delay_s: float, retry_at: float) -> None:
    finish = Finish(
        at=100.0, actor=W, worker=W, attempt=1, return_code=10, exec_time_s=1.0,
        retry_rule=0, retry=2, retry_delay_s=delay_s,
    )  # fmt: skip
    (event,) = decide(job_in(JobState.RUNNING), finish)
    assert isinstance(event, JobRetryScheduled)
    assert (event.rule, event.retry, event.retry_at) == (0, 2, retry_at)


def test_only_the_current_attempt_may_start_or_finish() -> None:
    with pytest.raises(IllegalTransition, match="not the current attempt"):
        decide(
            job_in(JobState.CLAIMED), Start(at=0, actor="other", worker="other", pid=1, host="h")
        )
    stale = Finish(at=0, actor=W, worker=W, attempt=0, return_code=0, exec_time_s=0)
    with pytest.raises(IllegalTransition, match="not the current attempt"):
        decide(job_in(JobState.RUNNING), stale)


def test_spawn_failure_can_end_a_claimed_attempt() -> None:
    finish = Finish(at=0, actor=W, worker=W, attempt=1, return_code=127, exec_time_s=0)
    (event,) = decide(job_in(JobState.CLAIMED), finish)
    assert isinstance(event, JobFailed)


@given(st.lists(st.sampled_from(commands()), max_size=12))
def test_any_sequence_of_accepted_commands_folds(sequence: list[AnyCommand]) -> None:
    """Property: applying whatever decide accepts never breaks evolve, and fold == stepwise."""
    job = Job(wf="wf", index=3)
    history = []
    for command in sequence:
        try:
            events = decide(job, command)
        except IllegalTransition:
            continue
        history += events
        for event in events:
            job = evolve(job, event)
    assert fold(Job(wf="wf", index=3), history) == job
    if job.state in TERMINAL:
        assert type(history[-1]) in (JobCompleted, JobFailed, JobTimedOut, JobCanceled)


def test_expired_lease_is_taken_over_and_the_old_attempt_fenced() -> None:
    running = job_in(JobState.RUNNING, worker="w1", attempt=1)
    lost, claimed = decide(running, Reclaim(at=5, actor="w2", worker="w2", lease_s=30))
    assert isinstance(lost, JobLost) and (lost.worker, lost.attempt) == ("w1", 1)
    assert isinstance(claimed, JobClaimed) and (claimed.worker, claimed.attempt) == ("w2", 2)
    job = fold(running, [lost, claimed])
    assert (job.state, job.worker, job.attempt) == (JobState.CLAIMED, "w2", 2)
    late = Finish(at=6, actor="w1", worker="w1", attempt=1, return_code=0, exec_time_s=1)
    with pytest.raises(IllegalTransition, match="not the current attempt"):
        decide(job, late)
    with pytest.raises(IllegalTransition, match="already holds"):
        decide(running, Reclaim(at=5, actor="w1", worker="w1", lease_s=30))


def test_an_ending_carries_every_fact_its_command_reported() -> None:
    """The attempt-ending events' fields come from the event types (own_fields), so a
    field added to AttemptEnded reaches the event without a list to update."""
    finish = Finish(
        at=2.0,
        actor=W,
        worker=W,
        attempt=1,
        return_code=3,
        exec_time_s=1.5,
        peak_memory_mib=12.5,
        cpu_time_s=0.75,
        stdout="out",
        stderr="err",
        stderr_tail="boom",
    )
    (failed,) = decide(job_in(JobState.RUNNING), finish)
    assert set(ATTEMPT_FIELDS) <= set(Finish.__struct_fields__)
    assert {name: getattr(failed, name) for name in ATTEMPT_FIELDS} == {
        name: getattr(finish, name) for name in ATTEMPT_FIELDS
    }
    terminate = Terminate(
        at=2.0, actor=W, worker=W, attempt=1, reason="stop", return_code=-15, exec_time_s=2.0
    )
    (terminated,) = decide(job_in(JobState.RUNNING), terminate)
    assert (terminated.return_code, terminated.exec_time_s, terminated.reason) == (-15, 2.0, "stop")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("last", "state", "attempt", "worker"),
    [
        (
            JobReady(wf="wf", job=3, at=1.0, actor="s", pool="p", hardware_class="c"),
            "ready",
            0,
            None,
        ),
        (
            JobClaimed(wf="wf", job=3, at=1.0, actor=W, worker=W, attempt=2, lease_s=30.0),
            "claimed",
            2,
            W,
        ),
        (
            JobLost(wf="wf", job=3, at=1.0, actor="w2", worker=W, attempt=2, reason="lease"),
            "ready",
            2,
            W,
        ),
        (JobCanceled(wf="wf", job=3, at=1.0, actor="u", reason="user"), "canceled", 0, None),
    ],
)
def test_a_job_as_its_last_event_tells_it(
    last: JobEvent, state: str, attempt: int, worker: str | None
) -> None:
    job = from_last_event("wf", 3, last)
    assert (job.state, job.attempt, job.worker) == (JobState(state), attempt, worker)
