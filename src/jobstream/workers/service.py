"""The worker: bind to every class consumer that fits, pack jobs, run them, report.

For each WORK message: claim the job with CAS on the dispatch's JobReady sequence (a
stale or duplicate dispatch is refused by the server and dropped), wait for room, spawn the
command, append JobStarted, renew the lease (``in_progress``) while it runs, store its
output, append JobCompleted/JobFailed with CAS on its own JobStarted, then ack.

Room is held only while processes run: with short jobs the next dispatches are fetched
and claimed while the current ones run (see :mod:`jobstream.workers.prefetch`), a freed
slot starts the next claimed job itself (:mod:`jobstream.workers.slots`), and every
append is pipelined, so many jobs' events share each round trip to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from nats.aio.msg import Msg
from nats.js.api import ConsumerInfo

from jobstream.decide import (
    Claim,
    Finish,
    Job,
    Reclaim,
    Start,
    Terminate,
    decide,
    evolve,
    state_after,
)
from jobstream.errors import IllegalTransition
from jobstream.events import (
    JobCanceled,
    JobClaimed,
    JobEvent,
    JobStarted,
    WorkerLost,
    WorkerStarted,
    WorkerStopped,
)
from jobstream.ids import new_worker_id
from jobstream.model import (
    CancelNotice,
    JobState,
    Resources,
    RetryRule,
    WorkItem,
    retry_rule_for,
)
from jobstream.runtime import tune_for_throughput
from jobstream.streams.connection import Connection
from jobstream.streams.reader import reply_delivery
from jobstream.streams.setup import POOL_KEY, REQUIREMENT_KEY, ensure_logs
from jobstream.streams.store import Conflict, EventStore, wrong_last_sequence
from jobstream.streams.subjects import (
    WORK_STREAM,
    cancel_notice_subject,
    consumer_created_subject,
    job_subject,
    log_object,
)
from jobstream.workers.capacity import Capacity, Reservation
from jobstream.workers.outputs import OutputFiles
from jobstream.workers.prefetch import ClassPace
from jobstream.workers.process import (
    Outcome,
    Output,
    read_output,
    seal_inherited_fds,
    shell_command,
)
from jobstream.workers.slots import Launch, Slots

log = logging.getLogger(__name__)
_item_decoder = msgspec.json.Decoder(WorkItem)
_notice_decoder = msgspec.json.Decoder(CancelNotice)
NO_OUTPUT = Output(b"", b"", "")
ACK = b"+ACK"  # JetStream's positive acknowledgement of a delivered message
BIND_INTERVAL_S = 1.0  # between looks for new class consumers, advisories aside
FETCH_WAIT_S = 1.0
MAX_BATCH = 256
NAK_DELAY_S = 0.2
HAND_BACK_S = 2.0  # how long a stopping worker tries to return an unclaimed dispatch
TERMINATE_RECORD_S = 10.0
RETRY_DELAY_S = 1.0
APPEND_PATIENCE_S = 300.0  # how long a finished job's result waits for the server


@dataclass
class WorkerOptions:
    """How a worker is sized and when it stops."""

    capacity: Resources
    pools: tuple[str, ...] = ("default",)
    walltime_s: float = float("inf")
    idle_timeout_s: float = 0.0
    lease_s: float = 30.0
    log_dir: Path = Path(".jobstream/logs")
    workdir: str | None = None
    term_grace_s: float = 5.0  # SIGTERM -> SIGKILL delay for a job past its runtime
    worker_id: str = field(default_factory=new_worker_id)


class Worker:
    """One worker process (or one task inside ``jobstream run``).

    Per job there is one task (:class:`JobRun`); what every held job needs now and then
    (lease renewal, checking its subject) is done for all of them by one lease loop.
    """

    def __init__(self, conn: Connection, options: WorkerOptions) -> None:
        self.conn = conn
        self.options = options
        self.id = options.worker_id
        self.store = EventStore(conn.js, conn.pipeline)
        self.capacity = Capacity(options.capacity)
        self.started_at = time.monotonic()
        self.last_busy = time.monotonic()
        self.bound: set[str] = set()
        self.paces: dict[str, ClassPace] = {}
        self.wakeups: dict[str, anyio.Event] = {}  # per class loop: demand may have changed
        self.runs: dict[tuple[str, int], JobRun] = {}  # held jobs, for notices and leases
        self.slots = Slots(self.capacity, gpu_env=bool(options.capacity.num_gpus))
        # One thread per running job (blocked in waitid while its process runs).
        self.launch_threads = anyio.CapacityLimiter(math.inf)
        self.jobs_run = 0
        self.stop_reason = "stopped"
        self.host = socket.gethostname()
        self.base_env = dict(os.environ)  # copying os.environ per job costs ~30 µs
        self.outputs = OutputFiles(options.log_dir, self.id)
        self.workdirs: set[str] = set()  # job folders known to exist on this host

    def remaining_s(self) -> float:
        return self.options.walltime_s - (time.monotonic() - self.started_at)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Work until idle-timeout or walltime (or cancellation); running jobs finish first."""
        tune_for_throughput()
        seal_inherited_fds()
        self.logs = await ensure_logs(self.conn.js)
        notices = await self.conn.nc.subscribe(
            cancel_notice_subject(self.id), cb=self._on_cancel_notice
        )
        await self._announce(
            WorkerStarted(
                at=time.time(),
                actor=self.id,
                worker=self.id,
                host=self.host,
                capacity=self.options.capacity,
                pools=self.options.pools,
                walltime_s=min(self.options.walltime_s, 1e12),
            )
        )
        try:
            async with anyio.create_task_group() as leases:
                leases.start_soon(self._lease_loop)
                # Jobs outlive the fetchers: stopping fetchers lets held jobs finish.
                async with anyio.create_task_group() as jobs:
                    self.jobs = jobs
                    self.slots.attach(
                        asyncio.get_running_loop().call_soon_threadsafe,
                        self._start_launches,
                        self.nudge,
                    )
                    async with anyio.create_task_group() as fetchers:
                        fetchers.start_soon(self._bind_loop, fetchers, jobs)
                        fetchers.start_soon(self._watch_stop, fetchers)
                        task_status.started()
                leases.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await anyio.to_thread.run_sync(self.outputs.close)
                with contextlib.suppress(Exception):
                    await notices.unsubscribe()
                await self._announce(
                    WorkerStopped(
                        at=time.time(),
                        actor=self.id,
                        worker=self.id,
                        reason=self.stop_reason,
                        jobs_run=self.jobs_run,
                    )
                )

    async def _announce(self, event: WorkerStarted | WorkerStopped) -> None:
        with contextlib.suppress(Exception):
            await self.store.append(event, None)

    async def _on_cancel_notice(self, msg: Msg) -> None:
        try:
            notice = _notice_decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("ignored a malformed cancel notice: %r", msg.data[:200])
            return
        run = self.runs.get((notice.wf, notice.job))
        if run is not None:
            run.cancel()

    async def _lease_loop(self) -> None:
        """Every lease/3: renew the dispatch of every held job, and look at the subject of
        each job running that long (a missed cancel notice, or another worker's takeover)."""
        period = self.options.lease_s / 3
        while True:
            await anyio.sleep(period)
            due = time.monotonic() - period
            for run in list(self.runs.values()):
                if run.held_since <= due:
                    await run.renew_lease(check=run.running_since <= due)

    async def _watch_stop(self, fetchers: TaskGroup) -> None:
        while True:
            await anyio.sleep(0.2)
            if self.remaining_s() <= 0:
                self.stop_reason = "walltime"
                break
            idle_for = time.monotonic() - self.last_busy
            if (
                self.options.idle_timeout_s
                and self.capacity.idle
                and not self.runs
                and (idle_for >= self.options.idle_timeout_s)
            ):
                self.stop_reason = "idle"
                break
        fetchers.cancel_scope.cancel()

    async def _bind_loop(self, fetchers: TaskGroup, jobs: TaskGroup) -> None:
        """Bind to new class consumers as the scheduler creates them: at once when the
        server announces one (its consumer-created advisory), else at the next look.

        Listing the consumers every quarter second alone kept the first jobs of a new
        class waiting ~0.2 s (of a 10 s run of 10,000 jobs); the looks remain, less
        often, for an advisory missed while the connection was down.
        """
        created = anyio.Event()

        async def on_created(msg: Msg) -> None:
            created.set()

        advisories = await self.conn.nc.subscribe(
            consumer_created_subject(WORK_STREAM), cb=on_created
        )
        try:
            while True:
                created = anyio.Event()
                try:
                    consumers = await self.conn.js.consumers_info(WORK_STREAM)
                except Exception as exc:  # server away: keep the jobs running, look again later
                    log.warning("cannot list WORK consumers: %s", exc)
                    consumers = []
                for info in consumers:
                    need = self._fitting_class(info)
                    if need is not None:
                        self.bound.add(info.name)
                        fetchers.start_soon(self._class_loop, info.name, need, jobs)
                with anyio.move_on_after(BIND_INTERVAL_S):
                    await created.wait()
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await advisories.unsubscribe()

    def _fitting_class(self, info: ConsumerInfo) -> Resources | None:
        meta = info.config.metadata or {}
        if info.name in self.bound or meta.get(POOL_KEY) not in self.options.pools:
            return None
        try:
            need = Resources.from_hardware_class(meta.get(REQUIREMENT_KEY, ""))
        except ValueError:
            return None
        return need if self.capacity.can_ever_run(need, self.remaining_s()) else None

    async def _class_loop(self, consumer: str, need: Resources, jobs: TaskGroup) -> None:
        """Fetch the dispatches of one class that this worker should hold, and run them.

        Nothing is reserved while a fetch waits: a loop polling an empty class must not
        starve the others.
        """
        pace = self.paces.setdefault(consumer, ClassPace(self.capacity.how_many_fit_empty(need)))
        sub = await self.conn.js.pull_subscribe_bind(durable=consumer, stream=WORK_STREAM)
        try:
            while need.runtime_s <= self.remaining_s():
                want = await self._wait_for_demand(consumer, need, pace)
                try:
                    msgs = await sub.fetch(want, timeout=FETCH_WAIT_S)
                except TimeoutError:  # nats raises its own or asyncio's, both are TimeoutError
                    continue
                except Exception as exc:  # server away: wait for the reconnect
                    log.warning("fetch from %s failed: %s", consumer, exc)
                    await anyio.sleep(RETRY_DELAY_S)
                    continue
                self.last_busy = time.monotonic()
                pace.held += len(msgs)
                for msg in msgs:
                    jobs.start_soon(self._run_job, msg, need, pace)
        finally:
            self.bound.discard(consumer)
            self.wakeups.pop(consumer, None)
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _wait_for_demand(self, consumer: str, need: Resources, pace: ClassPace) -> int:
        """Wait until this class should hold more dispatches; how many more."""
        while (want := pace.demand(self.capacity.how_many_fit(need, MAX_BATCH))) <= 0:
            wakeup = self.wakeups[consumer] = anyio.Event()
            await wakeup.wait()
        return min(want, MAX_BATCH)

    def nudge(self) -> None:
        """Wake the class loops: held jobs or free room changed."""
        for wakeup in self.wakeups.values():
            wakeup.set()

    def workdir(self, chosen: str | None) -> str:
        """Where a job runs: its workflow's folder if this host has it, else the worker's.

        Folders found are remembered (a stat per job is not free next to the launch
        threads); a missing one is looked for again each time, it may be created later.
        """
        if chosen and chosen in self.workdirs:
            return chosen
        if chosen and os.path.isdir(chosen):
            self.workdirs.add(chosen)
            return chosen
        return os.getcwd()

    def _start_launches(self, launch: Launch) -> None:
        """Run a launch granted room (and the ones its room goes to next) in a thread."""
        self.jobs.start_soon(self._launch_thread, launch)

    async def _launch_thread(self, launch: Launch) -> None:
        """Shielded: a launch granted room is always run or, when its job was canceled
        meanwhile, skipped, freeing the room; a worker stopping ends the processes."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.slots.run, launch, limiter=self.launch_threads)

    async def _run_job(self, msg: Msg, need: Resources, pace: ClassPace) -> None:
        try:
            item = _item_decoder.decode(msg.data)
            await JobRun(self, item, msg, need, pace).execute()
        except Exception as exc:  # the dispatch is redelivered after its lease
            log.error("job run failed: %s", exc)
        finally:
            self.last_busy = time.monotonic()
            pace.held -= 1
            self.nudge()


def delivery_nonce(msg: Msg) -> str:
    """Which delivery of its dispatch a message is: ``<stream seq>.<delivery count>``,
    read off its ack subject (nats-py's metadata parse cost ~25 µs per job)."""
    found = reply_delivery(msg.reply or "")
    if found is None:  # not a JetStream reply: let nats-py raise its error
        delivery = msg.metadata
        found = delivery.sequence.stream, delivery.num_delivered
    return f"{found[0]}.{found[1]}"


class JobRun:
    """One attempt of one job on this worker, from claim to the event that ends it."""

    def __init__(
        self, worker: Worker, item: WorkItem, msg: Msg, need: Resources, pace: ClassPace
    ) -> None:
        self.worker = worker
        self.item = item
        self.msg = msg
        self.need = need
        self.pace = pace
        self.job = Job(
            wf=item.wf,
            index=item.job,
            state=JobState.READY,
            attempt=item.attempts_before,
            spec=item.spec,
        )
        self.seq = item.ready_seq
        self.subject = job_subject(item.wf, item.job)
        self.nonce = delivery_nonce(msg)
        self.held_since = time.monotonic()
        self.running_since = float("inf")
        self.canceled = False
        self.launch: Launch | None = None

    def cancel(self) -> None:
        """The job was canceled (notice or lease check): do not start it, or end it."""
        self.canceled = True
        if self.launch is not None:
            self.worker.slots.withdraw(self.launch)
        self.end_process()

    def end_process(self) -> None:
        """Terminate the running process (canceled, or this attempt was fenced off)."""
        launch, w = self.launch, self.worker
        if launch is not None and launch.started.is_set() and not launch.ended.is_set():
            w.jobs.start_soon(w.slots.stop, launch, w.options.term_grace_s)

    async def _append(self, events: list[JobEvent]) -> bool:
        """Append with CAS on the last event this attempt wrote; False when fenced off."""
        for event in events:
            try:
                self.seq = await self._append_retrying(event)
            except Conflict:
                return False
            self.job = evolve(self.job, event)
        return True

    async def _append_retrying(
        self, event: JobEvent, sent: asyncio.Future[int] | None = None
    ) -> int:
        """Retry through a server restart: the same append is recognised, never doubled."""
        deadline = time.monotonic() + APPEND_PATIENCE_S
        store = self.worker.store
        while True:
            try:
                if sent is None:
                    sent = await store.send(event, self.seq, self.nonce)
                return await store.settle(sent, event, self.seq, self.nonce)
            except Conflict:
                raise
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("append of %s failed (%s); retrying", type(event).__name__, exc)
                sent = None
                await anyio.sleep(RETRY_DELAY_S)

    async def execute(self) -> None:
        w, key = self.worker, (self.item.wf, self.item.job)
        if key in w.runs:  # a redelivery of a dispatch this worker holds: it acks that one
            return
        w.runs[key] = self
        try:
            reservation = w.slots.try_reserve(self.need)
            if reservation is None and not self.pace.extra():
                # Another class took the room since the fetch: let another worker have it.
                with contextlib.suppress(Exception):
                    await self.msg.nak(delay=NAK_DELAY_S)
                return
            try:
                if not await self._claim():
                    log.info("job %s.%d: dispatch is stale, dropped", *key)
                    await self._ack()
                    return
                if self.canceled:  # during the claim: nothing runs
                    await self._ack()
                    return
                held, reservation = reservation, None
                await self._run(held)  # the launch owns the room now
            finally:
                if reservation is not None:
                    w.slots.release(reservation)
        finally:
            del w.runs[key]

    async def _claim(self) -> bool:
        w = self.worker
        claim = Claim(at=time.time(), actor=w.id, worker=w.id, lease_s=w.options.lease_s)
        try:
            return await self._append(decide(self.job, claim)) or await self._take_over()
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

    async def _run(self, reservation: Reservation | None) -> None:
        """Queue the process for room (unless it has some), follow it, record the outcome.

        A thread spawns it as soon as there is room, and frees the room when it ends
        (:mod:`jobstream.workers.slots`); only room a retry's recovery script needs is
        still held here.
        """
        w, spec = self.worker, self.item.spec
        scratch = w.outputs.take()
        launch = self.launch = Launch(
            need=self.need,
            argv=shell_command(spec.command, spec.invocation_script),
            cwd=self._workdir(),
            env=self._env(),
            stdout=scratch.stdout,
            stderr=scratch.stderr,
            keeps_room=self._keeps_room,
        )
        try:
            w.slots.queue(launch, reservation)
            if not await self._started(launch):
                await self._ack()  # canceled while it waited: nothing ran
                return
            ran = await self._supervise(launch)
            if ran is None:
                return  # fenced off: another worker holds the job now
            outcome, timed_out = ran
            self.pace.observe(outcome.exec_time_s)
            rule = (
                None
                if timed_out
                else retry_rule_for(spec.retry_rules, outcome.return_code, self.item.retries)
            )
            kept: dict[str, Path] = {}
            output = NO_OUTPUT
            if launch.wrote_output:
                kept = await anyio.to_thread.run_sync(
                    w.outputs.keep, scratch, self.item.wf, self.item.job, self.job.attempt
                )
                output = await anyio.to_thread.run_sync(
                    read_output, kept.get("stdout"), kept.get("stderr")
                )
                await self._store_logs(output.stdout, output.stderr)
            recovered = (
                await self._recover(spec.retry_rules[rule], launch) if rule is not None else None
            )
        finally:
            w.outputs.give_back(scratch)
            w.slots.done_with(launch)
        await self._finish(outcome, timed_out, rule, recovered, kept, output.stderr_tail)

    def _keeps_room(self, return_code: int) -> bool:
        """Whether a process that ended so keeps its room: for its retry's recovery script."""
        rules = self.item.spec.retry_rules
        rule = retry_rule_for(rules, return_code, self.item.retries)
        return rule is not None and bool(rules[rule].recovery_script)

    async def _started(self, launch: Launch) -> bool:
        """Wait until the launch leaves the queue; False if it never started (canceled).

        A worker stopping meanwhile hands the job back at once.
        """
        queued = launch.reservation is None
        self.pace.waiting += queued
        try:
            await launch.started.wait()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), anyio.move_on_after(TERMINATE_RECORD_S):
                w = self.worker
                if not w.slots.withdraw(launch):  # it has room: it may be starting now
                    await launch.started.wait()
                    await w.slots.stop(launch, w.options.term_grace_s)
                code = launch.outcome.return_code if launch.outcome else None
                await self._record_terminated(code, launch.began or time.monotonic())
            raise
        finally:
            self.pace.waiting -= queued
        return launch.process is not None or launch.outcome is not None

    async def _supervise(self, launch: Launch) -> tuple[Outcome, bool] | None:
        """Record JobStarted and wait for the process, terminating it past its runtime;
        None when this attempt was fenced off (its JobStarted refused).

        JobStarted is settled once the process has ended, so the slot never waits for the
        server; its answer is heard as soon as it comes (:meth:`_start_answered`), so a
        refused one terminates the process as a cancel would.
        """
        w, process = self.worker, launch.process
        if process is None:  # it could not start: it failed, without a JobStarted
            assert launch.outcome is not None
            return launch.outcome, False
        assert launch.reservation is not None
        start = Start(
            at=time.time(),
            actor=w.id,
            worker=w.id,
            pid=process.pid,
            host=w.host,
            gpu_ids=launch.reservation.gpu_ids,
        )
        (started,) = decide(self.job, start)
        if self.canceled:  # the notice came before the process was known
            self.end_process()
        sent = await w.store.send(started, self.seq, self.nonce)
        sent.add_done_callback(functools.partial(self._start_answered, started))
        grace = w.options.term_grace_s
        try:
            runtime_left = self.item.spec.resources.runtime_s - (time.monotonic() - launch.began)
            timed_out = await w.slots.run_within(launch, runtime_left, grace)
            await self._settle_start(started, sent)
        except anyio.get_cancelled_exc_class():
            # The worker is stopping (SIGTERM, end of allocation): the process group was
            # terminated; record it so the job is dispatched again at once.
            with anyio.CancelScope(shield=True), anyio.move_on_after(TERMINATE_RECORD_S):
                await w.slots.stop(launch, grace)  # done already, unless it was settling
                await self._settle_start(started, sent)
                if self.job.state is JobState.RUNNING:
                    code = launch.outcome.return_code if launch.outcome else None
                    await self._record_terminated(code, launch.began)
            raise
        if self.job.state is not JobState.RUNNING:
            return None
        # A process that even SIGKILL did not end (stuck in the kernel) has no outcome yet.
        outcome = launch.outcome or Outcome(-9, time.monotonic() - launch.began, 0.0, 0.0)
        return outcome, timed_out

    def _start_answered(self, started: JobEvent, sent: asyncio.Future[int]) -> None:
        """The server's first answer to JobStarted, on the loop (a callback: a task per job
        cost ~50 µs). Stored: the lease loop may check the job from now on. Refused for
        the wrong last sequence: the job's subject moved on since the claim (canceled, or
        taken over), and no earlier try of ours exists, so the process ends now."""
        if sent.cancelled():
            return
        error = sent.exception()
        if error is None:
            self._started_as(sent.result(), started)
        elif wrong_last_sequence(error):
            self.end_process()

    def _started_as(self, seq: int, started: JobEvent) -> None:
        """Note the stored JobStarted (again, harmlessly, if the callback already did)."""
        if self.job.state is JobState.CLAIMED:
            self.seq = seq
            self.job = evolve(self.job, started)
            self.running_since = time.monotonic()

    async def _settle_start(self, started: JobEvent, sent: asyncio.Future[int]) -> None:
        """Settle JobStarted; when refused (or the server never answers), this attempt is
        fenced off and its process ends."""
        try:
            self._started_as(await self._append_retrying(started, sent), started)
        except Exception as exc:
            log.warning("job %s.%d: JobStarted refused (%s)", self.job.wf, self.job.index, exc)
            self.end_process()

    async def renew_lease(self, *, check: bool) -> None:
        """Tell JetStream the dispatch is in progress; with ``check``, look at the job's
        subject too: a JobCanceled (notice missed) or another worker's takeover ends
        this attempt."""
        with contextlib.suppress(Exception):  # a missed renewal is retried next time
            await self.msg.in_progress()
            if not check:
                return
            last = await self.worker.store.last(self.subject)
            if last is not None and last.seq != self.seq:
                if isinstance(last.event, JobCanceled):
                    self.cancel()
                self.end_process()  # fenced off: another worker took the job over

    async def _finish(
        self,
        outcome: Outcome,
        timed_out: bool,
        rule: int | None,
        recovered: int | None,
        kept: dict[str, Path],
        stderr_tail: str,
    ) -> None:
        w = self.worker
        finish = Finish(
            at=time.time(),
            actor=w.id,
            worker=w.id,
            attempt=self.job.attempt,
            return_code=outcome.return_code,
            exec_time_s=outcome.exec_time_s,
            timed_out=timed_out,
            retry_rule=rule,
            retry=self.item.retries.get(rule, 0) + 1 if rule is not None else 0,
            recovery_return_code=recovered,
            peak_memory_mib=outcome.peak_memory_mib,
            cpu_time_s=outcome.cpu_time_s,
            stdout=str(kept.get("stdout", "")),
            stderr=str(kept.get("stderr", "")),
            stderr_tail=stderr_tail,
        )
        if await self._append(decide(self.job, finish)):
            w.jobs_run += 1
            await self._ack()
        elif self.canceled:  # the JobCanceled ends the job; nobody needs this dispatch
            await self._ack()

    def _log_path(self, stream: str) -> Path:
        return self.worker.outputs.path(self.item.wf, self.item.job, self.job.attempt, stream)

    async def _recover(self, rule: RetryRule, job_launch: Launch) -> int | None:
        """Run the rule's recovery script, in the room the job kept, before the retry;
        its return code is recorded."""
        if not rule.recovery_script:
            return None
        w = self.worker
        await anyio.Path(self._log_path("recovery.stdout").parent).mkdir(
            parents=True, exist_ok=True
        )
        launch = Launch(
            need=self.need,
            argv=shell_command(rule.recovery_script, None),
            cwd=self._workdir(),
            env=self._env(),
            stdout=self._log_path("recovery.stdout"),
            stderr=self._log_path("recovery.stderr"),
            keeps_room=lambda code: False,
        )
        w.slots.hand_over(job_launch, launch)
        with anyio.CancelScope(shield=True):  # granted: it starts, or is skipped, at once
            await launch.started.wait()
        runtime_left = self.item.spec.resources.runtime_s - (time.monotonic() - launch.began)
        await w.slots.run_within(launch, runtime_left, w.options.term_grace_s)
        return launch.outcome.return_code if launch.outcome else -int(signal.SIGKILL)

    async def _take_over(self) -> bool:
        """A redelivered dispatch whose job another worker holds: that worker stopped
        renewing the lease (JetStream redelivers only then), so its attempt is lost."""
        if self.msg.metadata.num_delivered <= 1:
            return False
        last = await self.worker.store.last(self.subject)
        if last is None or not isinstance(last.event, JobClaimed | JobStarted):
            return False
        holder = last.event
        self.job = Job(
            wf=self.item.wf,
            index=self.item.job,
            state=state_after(holder),
            attempt=holder.attempt,
            worker=holder.worker,
            spec=self.item.spec,
        )
        self.seq = last.seq
        w = self.worker
        reclaim = Reclaim(at=time.time(), actor=w.id, worker=w.id, lease_s=w.options.lease_s)
        try:
            events = decide(self.job, reclaim)
        except IllegalTransition:
            return False
        log.warning(
            "job %s.%d: lease of %s expired, taking over", holder.wf, holder.job, holder.worker
        )
        if not await self._append(events):
            return False
        lost = WorkerLost(at=time.time(), actor=w.id, worker=holder.worker, reason="lease expired")
        await w.store.append(lost, None)
        return True

    async def _record_terminated(self, return_code: int | None, began: float) -> None:
        w = self.worker
        terminate = Terminate(
            at=time.time(),
            actor=w.id,
            worker=w.id,
            attempt=self.job.attempt,
            reason=f"worker {w.id} stopping ({w.stop_reason})",
            return_code=return_code if return_code is not None else -15,
            exec_time_s=time.monotonic() - began,
        )
        if await self._append(decide(self.job, terminate)):
            await self._ack()

    async def _ack(self) -> None:
        """Done with the dispatch. If the ack is lost, the redelivery is refused at claim."""
        if self.msg.reply:
            self.worker.conn.pipeline.post(self.msg.reply, ACK)

    def _workdir(self) -> str:
        return self.worker.workdir(self.worker.options.workdir or self.item.workdir)

    def _env(self) -> dict[str, str]:
        """The job's environment (a GPU job's CUDA_VISIBLE_DEVICES is added at spawn)."""
        spec = self.item.spec
        env = {**self.worker.base_env, **spec.env}
        env.update(
            JOBSTREAM_WORKFLOW_ID=self.item.wf,
            JOBSTREAM_JOB_INDEX=str(self.item.job),
            JOBSTREAM_JOB_NAME=spec.name,
            JOBSTREAM_ATTEMPT=str(self.job.attempt),
            JOBSTREAM_WORKER_ID=self.worker.id,
        )
        return env

    async def _store_logs(self, stdout: bytes, stderr: bytes) -> None:
        """Copy non-empty output into the LOGS object store (empty files cost nothing)."""
        for name, data in (("stdout", stdout), ("stderr", stderr)):
            if data:
                key = log_object(self.item.wf, self.item.job, self.job.attempt, name)
                await self.worker.logs.put(key, data)
