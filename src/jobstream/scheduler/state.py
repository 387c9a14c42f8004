"""The scheduler's view of every workflow: a pure fold of the log that says what to do next.

``SchedulerState.apply(seq, event)`` folds one stored event and returns the intents it
triggers (make a job ready, block it, cancel it, dispatch it, complete the workflow).
``SchedulerState.reconcile()`` derives the same intents from the whole state, for a
scheduler that has just replayed the log after a restart. Neither does I/O; the service
turns intents into commands through ``jobstream.decide`` and appends the events.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec

from jobstream.decide import Job, evolve
from jobstream.events import (
    Event,
    JobBlocked,
    JobEvent,
    JobLost,
    JobReady,
    JobRestarted,
    JobRetryScheduled,
    JobSubmitted,
    JobTerminated,
    WorkflowArchived,
    WorkflowCompleted,
    WorkflowRestarted,
    WorkflowSubmitted,
)
from jobstream.model import TERMINAL, UNSUCCESSFUL, JobDef, JobState

_spec_encoder = msgspec.msgpack.Encoder()
_spec_decoder = msgspec.msgpack.Decoder(JobDef)
_REQUIRED = object()  # equal to no value: a required field is always packed


def _default(field: msgspec.structs.FieldInfo) -> object:
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return _REQUIRED if field.default is msgspec.NODEFAULT else field.default


# (attribute, key it is encoded under, default)
_SPEC_DEFAULTS = tuple((f.name, f.encode_name, _default(f)) for f in msgspec.structs.fields(JobDef))
ACTIVE = frozenset(
    {JobState.SUBMITTED, JobState.READY, JobState.CLAIMED, JobState.RUNNING, JobState.RETRYING}
)


class MakeReadyIntent(msgspec.Struct, frozen=True):
    wf: str
    job: int


class BlockIntent(msgspec.Struct, frozen=True):
    wf: str
    job: int
    unmet: tuple[int, ...]


class CancelIntent(msgspec.Struct, frozen=True):
    wf: str
    job: int
    reason: str


class DispatchIntent(msgspec.Struct, frozen=True):
    wf: str
    job: int
    ready_seq: int


class CompleteIntent(msgspec.Struct, frozen=True):
    wf: str
    counts: dict[str, int]


Intent = MakeReadyIntent | BlockIntent | CancelIntent | DispatchIntent | CompleteIntent


class Stray(NamedTuple):
    """A well-formed event no writer of jobstream appends where it stands (a plain NATS
    client can): about a job never submitted, or submitting one again. It is left
    unfolded; the log keeps it."""

    seq: int
    event: JobEvent
    reason: str


def _stray_reason(known: bool) -> str:
    return "the job was submitted before" if known else "the job was never submitted"


@dataclass
class WorkflowTrack:
    """One workflow: its jobs, dependency counters and per-state counts."""

    wf: str
    job_count: int = -1  # unknown until WorkflowSubmitted is read
    workdir: str = ""
    name: str = ""
    wf_seq: int = 0  # last sequence on ev.<wf>.wf (for the completion CAS)
    completed: bool = False
    jobs: dict[int, Job] = field(default_factory=dict)  # without their specs (see specs)
    specs: dict[int, bytes] = field(default_factory=dict)  # by pack_spec: read with spec()
    seqs: dict[int, int] = field(default_factory=dict)
    unmet: dict[int, int] = field(default_factory=dict)
    dependents: dict[int, list[int]] = field(default_factory=dict)
    retries: dict[int, dict[int, int]] = field(default_factory=dict)  # job -> rule -> count
    restarting: set[int] = field(default_factory=set)  # announced, JobRestarted not yet read
    lost: dict[int, float] = field(default_factory=dict)  # JobLost last, and when
    retry_at: dict[int, float] = field(default_factory=dict)  # a retry's delay ends then
    counts: Counter[JobState] = field(default_factory=Counter)

    def spec(self, job: int) -> JobDef:
        """A job's spec, decoded on use: a million decoded specs would not fit in 1 GiB,
        their packed msgpack (see :func:`pack_spec`) does."""
        return _spec_decoder.decode(self.specs[job])

    def state_of(self, job: int) -> JobState | None:
        known = self.jobs.get(job)
        return known.state if known else None

    def is_done(self) -> bool:
        """Every job submitted and none can move any more (blocked ones wait on failures)."""
        if self.completed or self.job_count < 0 or len(self.jobs) < self.job_count:
            return False
        if self.restarting:
            return False
        if any(self.counts[state] for state in ACTIVE):
            return False
        # Only reached when nothing runs. A blocked job still moves when all its
        # dependencies are met (release) or one failed and it cancels on failure.
        return not any(
            self.unmet[n] == 0 or self.cancel_pending(n)
            for n, job in self.jobs.items()
            if job.state is JobState.BLOCKED
        )

    def cancel_pending(self, n: int) -> bool:
        """A dependency failed and the job is to be canceled for it (not yet done)."""
        spec = self.spec(n)
        return spec.cancel_on_blocking_job_failure and any(
            self.state_of(dep) in UNSUCCESSFUL and dep not in self.restarting
            for dep in spec.depends_on
        )

    def jobs_left(self) -> int:
        """Jobs not in a terminal state."""
        return self.job_count - sum(self.counts[state] for state in TERMINAL)

    def count_names(self) -> dict[str, int]:
        return {state.value: n for state, n in sorted(self.counts.items()) if n}


class SchedulerState:
    """All workflows the scheduler has seen, folded from the log (and its own appends)."""

    def __init__(self) -> None:
        self.workflows: dict[str, WorkflowTrack] = {}
        self.last_seq = 0
        self.dirty: set[str] = set()
        self.delayed: list[tuple[float, str, int]] = []  # heap of retries waiting (at, wf, n)
        self.out_of_place: list[Stray] = []  # for the service to report, then clear
        # Completed workflows let go of (:meth:`evict_completed`): read back from the log
        # by the service when one of their events arrives (a restart).
        self.finished: set[str] = set()

    def evict_completed(self) -> int:
        """Let go of every completed workflow (nothing of it can move unless it is
        restarted); how many. The scheduler's memory and snapshots then hold only the
        open workflows, however long the log."""
        done = [wf for wf, t in self.workflows.items() if t.completed and not t.restarting]
        for wf in done:
            del self.workflows[wf]
            self.dirty.discard(wf)
        self.finished.update(done)
        return len(done)

    def reload(self, wf: str, history: list[tuple[int, Event]]) -> None:
        """Fold an evicted workflow's events back in (no intents: they were carried out
        when the events were new)."""
        self.finished.discard(wf)
        last = self.last_seq
        for seq, event in history:
            self.apply(seq, event)
        self.last_seq = last

    def track(self, wf: str) -> WorkflowTrack:
        found = self.workflows.get(wf)
        if found is None:
            found = self.workflows[wf] = WorkflowTrack(wf)
        return found

    def apply(self, seq: int, event: Event) -> list[Intent]:
        """Fold one stored event; return what it makes necessary. Stale events are no-ops."""
        self.last_seq = max(self.last_seq, seq)
        if isinstance(event, JobEvent):
            return self._apply_job(seq, event)
        if isinstance(event, WorkflowArchived):  # finished for good: nothing to keep
            self.workflows.pop(event.wf, None)
            self.finished.discard(event.wf)
            self.dirty.discard(event.wf)
            return []
        if isinstance(event, WorkflowSubmitted):
            track = self.track(event.wf)
            if seq <= track.wf_seq:
                return []
            track.job_count, track.workdir, track.wf_seq = event.job_count, event.workdir, seq
            track.name = event.name
            self.dirty.add(event.wf)
        if isinstance(event, WorkflowCompleted | WorkflowRestarted):
            track = self.track(event.wf)
            if seq <= track.wf_seq:
                return []
            track.completed, track.wf_seq = isinstance(event, WorkflowCompleted), seq
            if isinstance(event, WorkflowRestarted):
                track.restarting.update(event.jobs)
                self.dirty.add(event.wf)
        return []

    def _apply_job(self, seq: int, event: JobEvent) -> list[Intent]:
        track = self.track(event.wf)
        n = event.job
        if seq <= track.seqs.get(n, 0):
            return []  # our own append, already applied when it was acknowledged
        if (n in track.jobs) is isinstance(event, JobSubmitted):
            self.out_of_place.append(Stray(seq, event, _stray_reason(n in track.jobs)))
            return []
        job = _fold_job(track, n, seq, event)
        self.dirty.add(event.wf)
        return self._consequences(track, n, seq, event, job)

    def _consequences(
        self, track: WorkflowTrack, n: int, seq: int, event: JobEvent, job: Job
    ) -> list[Intent]:
        """What a job's new event makes necessary."""
        if isinstance(event, JobSubmitted):
            return self._on_submitted(track, event)
        if isinstance(event, JobReady):
            return [DispatchIntent(event.wf, n, seq)]
        if isinstance(event, JobRestarted):
            track.restarting.discard(n)
            track.unmet[n] = sum(
                track.state_of(dep) is not JobState.COMPLETED for dep in track.spec(n).depends_on
            )
            return self._readiness(track, n)
        if isinstance(event, JobRetryScheduled):
            track.retries.setdefault(n, {})[event.rule] = event.retry
            if event.retry_at:
                track.retry_at[n] = event.retry_at
            return self._retry(track, n)
        if isinstance(event, JobTerminated):
            return [MakeReadyIntent(event.wf, n)]
        if isinstance(event, JobBlocked):
            # Decided from an older view: the dependencies may have finished meanwhile
            # (their release found the job not yet blocked).
            return self._readiness(track, n)
        if job.state is JobState.COMPLETED:
            return self._release_dependents(track, n)
        if job.state in UNSUCCESSFUL:
            return self._cancel_dependents(track, n)
        return []

    def note_ill_formed(self, seq: int, wf: str, n: int) -> list[Intent]:
        """A stored message on job ``n``'s subject that is not an event: it changes no
        state, but the next decision must name its sequence. What the job waits for is
        derived again (a decision refused because of it was dropped)."""
        self.last_seq = max(self.last_seq, seq)
        track = self.workflows.get(wf)
        if track is None or n not in track.jobs or seq <= track.seqs.get(n, 0):
            return []
        track.seqs[n] = seq
        self.dirty.add(wf)
        return self._next_step(track, n)

    def _next_step(self, track: WorkflowTrack, n: int) -> list[Intent]:
        """What a job still needs from the scheduler, from its state alone (a ready job's
        dispatch is already queued: its claim appends after any ill-formed message)."""
        state = track.jobs[n].state
        if state in (JobState.SUBMITTED, JobState.BLOCKED):
            return self._readiness(track, n)
        if state is JobState.RETRYING:
            return self._retry(track, n)
        return []

    def _retry(self, track: WorkflowTrack, n: int) -> list[Intent]:
        """Make a retrying job ready, at once or (its rule's delay) when :meth:`due`."""
        at = track.retry_at.get(n)
        if at is None:
            return [MakeReadyIntent(track.wf, n)]
        heapq.heappush(self.delayed, (at, track.wf, n))
        return []

    def due(self, now: float) -> list[Intent]:
        """The retries whose delay has ended by ``now`` (epoch seconds)."""
        intents: list[Intent] = []
        while self.delayed and self.delayed[0][0] <= now:
            at, wf, n = heapq.heappop(self.delayed)
            track = self.workflows.get(wf)
            if track is None or track.retry_at.get(n) != at:
                continue  # an earlier retry's, or already made ready
            del track.retry_at[n]
            if track.state_of(n) is JobState.RETRYING:
                intents.append(MakeReadyIntent(wf, n))
        return intents

    def next_due(self) -> float | None:
        """When the next delayed retry is due (epoch seconds), if any waits."""
        return self.delayed[0][0] if self.delayed else None

    def _on_submitted(self, track: WorkflowTrack, event: JobSubmitted) -> list[Intent]:
        n = event.job
        for dep in event.spec.depends_on:
            track.dependents.setdefault(dep, []).append(n)
        track.unmet[n] = sum(
            track.state_of(dep) is not JobState.COMPLETED for dep in event.spec.depends_on
        )
        return self._readiness(track, n)

    def _readiness(self, track: WorkflowTrack, n: int) -> list[Intent]:
        """Cancel (a dependency failed), make ready (all met) or block a waiting job."""
        if track.unmet[n] == 0:  # every dependency completed, so none failed
            return [MakeReadyIntent(track.wf, n)]
        job, spec = track.jobs[n], track.spec(n)
        failed = [
            d
            for d in spec.depends_on
            if track.state_of(d) in UNSUCCESSFUL and d not in track.restarting
        ]
        if failed and spec.cancel_on_blocking_job_failure:
            return [CancelIntent(track.wf, n, _dependency_reason(track, failed[0]))]
        if job.state is JobState.SUBMITTED:
            unmet = tuple(d for d in spec.depends_on if track.state_of(d) is not JobState.COMPLETED)
            return [BlockIntent(track.wf, n, unmet)]
        return []

    def _release_dependents(self, track: WorkflowTrack, n: int) -> list[Intent]:
        intents: list[Intent] = []
        for child in track.dependents.get(n, ()):
            track.unmet[child] -= 1
            if track.unmet[child] == 0 and track.state_of(child) is JobState.BLOCKED:
                intents.append(MakeReadyIntent(track.wf, child))
        return intents

    def _cancel_dependents(self, track: WorkflowTrack, n: int) -> list[Intent]:
        reason = _dependency_reason(track, n)
        return [
            CancelIntent(track.wf, child, reason)
            for child in track.dependents.get(n, ())
            if track.state_of(child) not in TERMINAL | {None} and _cancels_on_failure(track, child)
        ]

    def stranded(self, now: float, after_s: float) -> list[Intent]:
        """Jobs a takeover left half done — a JobLost for ``after_s`` with no JobClaimed
        after it (written by a server without atomic batches, or before them): they are
        ready, and nothing is queued for them. Each is dispatched again, once."""
        intents: list[Intent] = []
        for track in self.workflows.values():
            for n, at in list(track.lost.items()):
                if now - at >= after_s:
                    del track.lost[n]
                    if track.state_of(n) is JobState.READY:
                        intents.append(DispatchIntent(track.wf, n, track.seqs[n]))
        return intents

    def unfinished(self) -> list[WorkflowTrack]:
        """Workflows submitted and not completed (left by a run that was interrupted, or
        still running elsewhere)."""
        return [t for t in self.workflows.values() if t.job_count >= 0 and not t.completed]

    def completions(self) -> list[CompleteIntent]:
        """Workflows changed since the last call that are now done.

        Call it only when every other intent has been carried out: a job about to be
        released or canceled must not be mistaken for the end of its workflow.
        """
        done = [self.workflows[wf] for wf in sorted(self.dirty) if self.workflows[wf].is_done()]
        self.dirty.clear()
        return [CompleteIntent(track.wf, track.count_names()) for track in done]

    def reconcile(self) -> list[Intent]:
        """Everything still to do after a replay: undecided, releasable, undispatched jobs."""
        intents: list[Intent] = []
        for track in list(self.workflows.values()):
            for n, job in track.jobs.items():
                if job.state is JobState.READY:
                    intents.append(DispatchIntent(track.wf, n, track.seqs[n]))
                else:
                    intents += self._next_step(track, n)
            self.dirty.add(track.wf)
        return intents


def _fold_job(track: WorkflowTrack, n: int, seq: int, event: JobEvent) -> Job:
    """Fold a job's event into the track: its state (spec packed apart), sequence, the
    per-state counts and whether a takeover is under way."""
    track.lost.pop(n, None)
    if isinstance(event, JobLost):  # the JobClaimed of its takeover should follow
        track.lost[n] = event.at
    before = track.state_of(n)
    job = evolve(track.jobs.get(n) or Job(wf=track.wf, index=n), event)
    if job.spec is not None:
        track.specs[n] = pack_spec(job.spec)
        job = msgspec.structs.replace(job, spec=None)
    track.jobs[n], track.seqs[n] = job, seq
    if before is not None:
        track.counts[before] -= 1
    assert job.state is not None
    track.counts[job.state] += 1
    return job


def pack_spec(spec: JobDef) -> bytes:
    """msgpack of the fields that differ from their defaults, in a buffer of its exact size.

    The decoder fills the defaults back in. A sweep's job keeps only what is its own,
    without the slack of the encoder's growing buffer: the difference between a million
    held jobs fitting in 1 GiB or not.
    """
    fields = {
        key: value
        for name, key, default in _SPEC_DEFAULTS
        if (value := getattr(spec, name)) != default
    }
    buffer = bytearray()
    _spec_encoder.encode_into(fields, buffer)
    return bytes(buffer)


def _cancels_on_failure(track: WorkflowTrack, n: int) -> bool:
    return n not in track.specs or track.spec(n).cancel_on_blocking_job_failure


def _dependency_reason(track: WorkflowTrack, dep: int) -> str:
    job = track.jobs.get(dep)
    name = track.spec(dep).name if dep in track.specs else str(dep)
    state = job.state.value if job and job.state else "unknown"
    return f"dependency {name!r} {state}"
