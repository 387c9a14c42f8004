"""One attempt of one job on a worker, from its WORK message to the event that ends it.

Claim the job with CAS on the dispatch's JobReady sequence (a stale or duplicate dispatch
is refused by the server and dropped), wait for room, spawn the command, record
JobStarted, let the lease be renewed while it runs (the worker's lease loop calls
:meth:`Attempt.renew_lease`), store its output, record how it ended with CAS on its own
JobStarted, then ack the message. Every append goes through the job repository, which
retries it through a server outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

import anyio
from nats.aio.msg import Msg

from jobstream.decide import (
    AnyCommand,
    Claim,
    Job,
    Reclaim,
    Start,
    Terminate,
    decide,
    evolve,
)
from jobstream.errors import IllegalTransition
from jobstream.events import JobCanceled, JobEvent, WorkerLost
from jobstream.model import JobState, Resources, RetryRule, WorkItem, retry_rule_for
from jobstream.streams.repository import JobVersion, Sent
from jobstream.streams.store import Conflict, wrong_last_sequence
from jobstream.streams.subjects import job_subjects
from jobstream.streams.wire import ACK, delivery_of
from jobstream.workers.capacity import Reservation
from jobstream.workers.context import WorkerContext
from jobstream.workers.ending import NO_OUTPUT, Ending, keep_output
from jobstream.workers.prefetch import PATIENCE_S, ClassPace
from jobstream.workers.process import Outcome, shell_command
from jobstream.workers.slots import Launch

log = logging.getLogger(__name__)
NAK_DELAY_S = 0.2
HAND_BACK_S = 2.0  # how long a stopping worker tries to return an unclaimed dispatch
TERMINATE_RECORD_S = 10.0


class Claimed(enum.Enum):
    """What came of claiming a dispatch's job."""

    YES = "claimed"  # by this worker, or taken over from a lost one
    STALE = "stale"  # the dispatch is out of date (or a duplicate): drop it
    HELD = "held"  # a redelivery, but its live holder renews it: leave it be
    ENDED = "ended"  # this worker's own failed attempt, ended here (JobTerminated)


class Attempt:
    """One attempt: the job's version as this worker last wrote it, and its process."""

    def __init__(
        self, ctx: WorkerContext, item: WorkItem, msg: Msg, need: Resources, pace: ClassPace
    ) -> None:
        self.ctx = ctx
        self.item = item
        self.msg = msg
        self.need = need
        self.pace = pace
        job = Job(wf=item.wf, index=item.job, state=JobState.READY, attempt=item.attempts_before)
        self.version = JobVersion(job, item.ready_seq)
        self.delivery = delivery_of(msg)
        self.nonce = f"{self.delivery[0]}.{self.delivery[1]}"
        self.subject = job_subjects(item.wf, item.job)
        self.held_since = time.monotonic()
        self.running_since = float("inf")
        self.canceled = False
        self.launch: Launch | None = None

    @property
    def job(self) -> Job:
        return self.version.job

    def cancel(self) -> None:
        """The job was canceled (notice or lease check): do not start it, or end it."""
        self.canceled = True
        if self.launch is not None:
            self.ctx.slots.withdraw(self.launch)
        self.end_process()

    def end_process(self) -> None:
        """Terminate the running process (canceled, or this attempt was fenced off)."""
        launch, ctx = self.launch, self.ctx
        if launch is not None and launch.started.is_set() and not launch.ended.is_set():
            ctx.background.start_soon(ctx.slots.stop, launch, ctx.options.term_grace_s)

    async def _decide(self, command: AnyCommand) -> bool:
        """Decide and append on the version this attempt last wrote; False when fenced
        off (the subject moved on: canceled, or taken over)."""
        try:
            self.version = await self.ctx.jobs.execute(self.version, command, self.nonce)
        except Conflict:
            return False
        return True

    async def execute(self) -> bool:
        """Run the attempt; True when its ending was recorded by this worker."""
        if not self.ctx.slots.fits_time_left(self.need):
            # Fetched just before the worker had too little time left for its class.
            with contextlib.suppress(Exception):
                await self.msg.nak(delay=NAK_DELAY_S)
            return False
        reservation = self.ctx.slots.try_reserve(self.need)
        if reservation is None and not self.pace.extra():
            # Another class took the room since the fetch: let another worker have it.
            with contextlib.suppress(Exception):
                await self.msg.nak(delay=NAK_DELAY_S)
            return False
        try:
            claimed = await self._claim()
            if claimed in (Claimed.HELD, Claimed.ENDED):  # its holder renews it, or it ended
                return False
            if claimed is Claimed.STALE:
                log.info("job %s.%d: dispatch is stale, dropped", self.item.wf, self.item.job)
                self._ack()
                return False
            if self.canceled:  # during the claim: nothing runs
                self._ack()
                return False
            held, reservation = reservation, None
            return await self._run(held)  # the launch owns the room now
        finally:
            if reservation is not None:
                self.ctx.slots.release(reservation)

    async def _claim(self) -> Claimed:
        ctx = self.ctx
        claim = Claim(
            at=time.time(), actor=ctx.worker_id, worker=ctx.worker_id, lease_s=ctx.options.lease_s
        )
        try:
            return Claimed.YES if await self._decide(claim) else await self._take_over()
        except anyio.get_cancelled_exc_class():
            # The worker is stopping: hand the dispatch back now, not after its lease. If
            # the claim did land, the next worker finds it and takes the job over.
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(HAND_BACK_S),
                contextlib.suppress(Exception),
            ):
                await self.msg.nak()
            raise

    async def _run(self, reservation: Reservation | None) -> bool:
        """Queue the process for room (unless it has some), follow it, record the outcome.

        A thread spawns it as soon as there is room, and frees the room when it ends
        (:mod:`jobstream.workers.slots`); only room a retry's recovery script needs is
        still held here.
        """
        ctx, spec = self.ctx, self.item.spec
        scratch = ctx.outputs.take()
        command = shell_command(spec.command, spec.invocation_script)
        launch = self.launch = self._launch(
            command, scratch.stdout, scratch.stderr, self._keeps_room
        )
        try:
            ctx.slots.queue(launch, reservation)
            if not await self._started(launch):
                return False
            ran = await self._supervise(launch)
            if ran is None:
                return False  # fenced off: another worker holds the job now
            outcome, timed_out = ran
            self.pace.observe(outcome.exec_time_s, time.monotonic())
            rule = (
                None
                if timed_out
                else retry_rule_for(spec.retry_rules, outcome.return_code, self.item.retries)
            )
            kept: dict[str, Path] = {}
            output = NO_OUTPUT  # most short jobs print nothing
            if outcome.wrote_output:
                kept, output = await keep_output(ctx, scratch, self.item, self.job.attempt)
            recovered = (
                await self._recover(spec.retry_rules[rule], launch) if rule is not None else None
            )
        finally:
            ctx.outputs.give_back(scratch)
            ctx.slots.done_with(launch)
        ending = Ending(outcome, timed_out, rule, recovered, kept, output.stderr_tail)
        return await self._finish(ending)

    def _keeps_room(self, return_code: int) -> bool:
        """Whether a process that ended so keeps its room: for its retry's recovery script."""
        rules = self.item.spec.retry_rules
        rule = retry_rule_for(rules, return_code, self.item.retries)
        return rule is not None and bool(rules[rule].recovery_script)

    async def _started(self, launch: Launch) -> bool:
        """Wait until the launch leaves the queue; False if it never started: canceled, or
        handed back. Handed back: claimed ahead of the slots, it found no room while no
        job of its class ended for ``PATIENCE_S`` (their pace changed, and another worker
        may start it), or its runtime no longer fits the time the worker has left.

        A worker stopping meanwhile hands the job back at once.
        """
        slots = self.ctx.slots
        queued = launch.reservation is None
        self.pace.waiting += queued
        handed_back = False
        try:
            while queued and not launch.started.is_set() and not handed_back:
                with anyio.move_on_after(PATIENCE_S):
                    await launch.started.wait()
                if self.pace.stuck(time.monotonic()) or not slots.fits_time_left(self.need):
                    handed_back = slots.withdraw(launch, revoke=False)
            await launch.started.wait()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), anyio.move_on_after(TERMINATE_RECORD_S):
                ctx = self.ctx
                if not ctx.slots.withdraw(launch):  # it has room: it may be starting now
                    await launch.started.wait()
                    await ctx.slots.stop(launch, ctx.options.term_grace_s)
                code = launch.outcome.return_code if launch.outcome else None
                await self._record_terminated(code, launch.began or time.monotonic())
            raise
        finally:
            self.pace.waiting -= queued
        if handed_back or launch.too_late:
            reason = f"no room within {PATIENCE_S:g} s on worker {self.ctx.worker_id}"
            if not slots.fits_time_left(self.need):
                reason = (
                    f"its runtime ({self.need.runtime_s} s) does not fit the "
                    f"{max(0.0, slots.time_left()):.0f} s worker {self.ctx.worker_id} has left"
                )
            with anyio.CancelScope(shield=True), anyio.move_on_after(TERMINATE_RECORD_S):
                await self._record_terminated(None, time.monotonic(), reason)
            return False
        if launch.process is None and launch.outcome is None:
            self._ack()  # canceled while it waited: nothing ran
            return False
        return True

    async def _supervise(self, launch: Launch) -> tuple[Outcome, bool] | None:
        """Record JobStarted and wait for the process, terminating it past its runtime;
        None when this attempt was fenced off (its JobStarted refused).

        JobStarted is settled once the process has ended, so the slot never waits for the
        server; its answer is heard as soon as it comes (:meth:`_start_answered`), so a
        refused one terminates the process as a cancel would.
        """
        ctx, process = self.ctx, launch.process
        if process is None:  # it could not start: it failed, without a JobStarted
            assert launch.outcome is not None
            return launch.outcome, False
        assert launch.reservation is not None
        start = Start(
            at=time.time(),
            actor=ctx.worker_id,
            worker=ctx.worker_id,
            pid=process.pid,
            host=ctx.host,
            gpu_ids=launch.reservation.gpu_ids,
        )
        (started,) = decide(self.job, start)
        if self.canceled:  # the notice came before the process was known
            self.end_process()
        sent = await ctx.jobs.send(self.version, started, self.nonce)
        sent.future.add_done_callback(functools.partial(self._start_answered, started))
        grace = ctx.options.term_grace_s
        try:
            runtime_left = self.item.spec.resources.runtime_s - (time.monotonic() - launch.began)
            timed_out = await ctx.slots.run_within(launch, runtime_left, grace)
            await self._settle_start(sent)
        except anyio.get_cancelled_exc_class():
            # The worker is stopping (SIGTERM, end of allocation): the process group was
            # terminated; record it so the job is dispatched again at once.
            with anyio.CancelScope(shield=True), anyio.move_on_after(TERMINATE_RECORD_S):
                await ctx.slots.stop(launch, grace)  # done already, unless it was settling
                await self._settle_start(sent)
                if self.job.state is JobState.RUNNING:
                    code = launch.outcome.return_code if launch.outcome else None
                    await self._record_terminated(code, launch.began)
            raise
        if self.job.state is not JobState.RUNNING:
            return None
        # A process that even SIGKILL did not end (stuck in the kernel) has no outcome yet.
        outcome = launch.outcome or Outcome(-9, time.monotonic() - launch.began, 0.0, 0.0)
        return outcome, timed_out

    def _start_answered(self, started: JobEvent, answer: asyncio.Future[int]) -> None:
        """The server's first answer to JobStarted, on the loop (a callback, not a task per
        job). Stored: the lease loop may check the job from now on. Refused for the wrong
        last sequence: the job's subject moved on since the claim, so it is looked at at
        once (:meth:`_start_refused`)."""
        if answer.cancelled():
            return
        error = answer.exception()
        if error is None:
            self._started_as(answer.result(), started)
        elif wrong_last_sequence(error):
            self.ctx.background.start_soon(self._start_refused)

    async def _start_refused(self) -> None:
        """The process ends now if the job moved on since the claim (canceled, or taken
        over); after ill-formed messages only it runs on, and its start is appended
        again after them when it settles."""
        with contextlib.suppress(Exception):  # unreadable now: the settle decides
            last = (await self.ctx.jobs.store.latest(self.subject)).event
            if last is None or last.seq != self.version.seq:
                self.end_process()

    def _started_as(self, seq: int, started: JobEvent) -> None:
        """Note the stored JobStarted (again, harmlessly, if the callback already did)."""
        if self.job.state is JobState.CLAIMED:
            self.version = JobVersion(evolve(self.job, started), seq)
            self.running_since = time.monotonic()

    async def _settle_start(self, sent: Sent) -> None:
        """Settle JobStarted; when refused (or the server never answers), this attempt is
        fenced off and its process ends."""
        try:
            self._started_as((await self.ctx.jobs.settle(sent)).seq, sent.event)
        except Exception as exc:
            log.warning("job %s.%d: JobStarted refused (%s)", self.job.wf, self.job.index, exc)
            self.end_process()

    async def renew_lease(self) -> None:
        """Tell JetStream the dispatch is in progress (a publish: it never waits for the
        server, so one slow answer cannot let other leases lapse)."""
        with contextlib.suppress(Exception):  # a missed renewal is retried next time
            await self.msg.in_progress()

    async def check_subject(self) -> None:
        """Look at the job's subject: a JobCanceled (notice missed) or another worker's
        takeover ends this attempt."""
        with contextlib.suppress(Exception):  # unreadable now: looked at next time
            last = (await self.ctx.jobs.store.latest(self.subject)).event
            if last is not None and last.seq != self.version.seq:  # ill-formed ones aside
                if isinstance(last.event, JobCanceled):
                    self.cancel()
                self.end_process()  # fenced off: another worker took the job over

    async def _finish(self, ending: Ending) -> bool:
        recorded = await self._decide(ending.finish(self.ctx, self.job.attempt, self.item))
        if recorded or self.canceled:  # a JobCanceled ends the job: nobody needs the dispatch
            self._ack()
        return recorded

    def _log_path(self, stream: str) -> Path:
        return self.ctx.outputs.path(self.item.wf, self.item.job, self.job.attempt, stream)

    async def _recover(self, rule: RetryRule, job_launch: Launch) -> int | None:
        """Run the rule's recovery script, in the room the job kept, before the retry;
        its return code is recorded."""
        if not rule.recovery_script:
            return None
        ctx = self.ctx
        await anyio.Path(self._log_path("recovery.stdout").parent).mkdir(
            parents=True, exist_ok=True
        )
        launch = self._launch(
            shell_command(rule.recovery_script, None),
            self._log_path("recovery.stdout"),
            self._log_path("recovery.stderr"),
            lambda code: False,
        )
        ctx.slots.hand_over(job_launch, launch)
        with anyio.CancelScope(shield=True):  # granted: it starts, or is skipped, at once
            await launch.started.wait()
        runtime_left = self.item.spec.resources.runtime_s - (time.monotonic() - launch.began)
        await ctx.slots.run_within(launch, runtime_left, ctx.options.term_grace_s)
        return launch.outcome.return_code if launch.outcome else -int(signal.SIGKILL)

    async def _take_over(self) -> Claimed:
        """A redelivered dispatch whose job another worker holds: that worker did not
        renew the lease in time (JetStream redelivers only then). If it does not say it
        still holds the job (:mod:`jobstream.workers.probe`), its attempt is lost."""
        if self.delivery[1] <= 1:
            return Claimed.STALE
        ctx = self.ctx
        held = await ctx.jobs.load(self.item.wf, self.item.job)
        if held is None or held.job.state not in (JobState.CLAIMED, JobState.RUNNING):
            return Claimed.STALE
        holder = held.job.worker
        assert holder is not None
        if holder == ctx.worker_id:
            # This worker's own earlier attempt of the job failed (a worker runs one
            # attempt per job, and this is it): it ends, and the job is dispatched again.
            self.version = held
            with contextlib.suppress(IllegalTransition):
                await self._record_terminated(None, time.monotonic(), "its attempt failed")
            return Claimed.ENDED
        if await ctx.holder_answers(holder, held.job.wf, held.job.index):
            log.info("job %s.%d: redelivered, but %s holds it", held.job.wf, held.job.index, holder)
            return Claimed.HELD
        self.version = held
        reclaim = Reclaim(
            at=time.time(), actor=ctx.worker_id, worker=ctx.worker_id, lease_s=ctx.options.lease_s
        )
        try:
            taken = await self._decide(reclaim)
        except IllegalTransition:
            return Claimed.STALE
        if not taken:
            return Claimed.STALE
        log.warning(
            "job %s.%d: lease of %s expired, taken over", held.job.wf, held.job.index, holder
        )
        lost = WorkerLost(
            at=time.time(), actor=ctx.worker_id, worker=holder, reason="lease expired"
        )
        try:  # a note about the holder, written once per taker (the same message id)
            await ctx.jobs.store.append(lost, None)
        except Exception as exc:  # the job is taken over all the same
            log.info("WorkerLost of %s not written (%s)", holder, exc)
        return Claimed.YES

    async def _record_terminated(
        self, return_code: int | None, began: float, reason: str | None = None
    ) -> None:
        """End this attempt without a failure (the job is dispatched again): the worker is
        stopping, unless another ``reason`` is given; -15 for a process that never started."""
        ctx = self.ctx
        terminate = Terminate(
            at=time.time(),
            actor=ctx.worker_id,
            worker=ctx.worker_id,
            attempt=self.job.attempt,
            reason=reason or f"worker {ctx.worker_id} stopping ({ctx.stop_reason()})",
            return_code=return_code if return_code is not None else -15,
            exec_time_s=time.monotonic() - began,
        )
        if await self._decide(terminate):
            self._ack()

    def _ack(self) -> None:
        """Done with the dispatch. If the ack is lost, the redelivery is refused at claim."""
        if self.msg.reply:
            self.ctx.pipeline.post(self.msg.reply, ACK)

    def _launch(
        self, argv: list[str], stdout: Path, stderr: Path, keeps_room: Callable[[int], bool]
    ) -> Launch:
        """A process of this attempt, in the job's folder and environment."""
        return Launch(
            need=self.need,
            argv=argv,
            cwd=self.ctx.folders.of(self.item.workdir),
            env=self.ctx.job_env(self.item, self.job.attempt),
            stdout=stdout,
            stderr=stderr,
            keeps_room=keeps_room,
        )
