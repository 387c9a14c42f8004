"""The worker: bind to every class consumer that fits, pack jobs, run them, report.

Each WORK message becomes an :class:`~jobstream.workers.attempt.Attempt` task. Room is
held only while processes run: with short jobs the next dispatches are fetched and
claimed while the current ones run (:mod:`jobstream.workers.prefetch`), a freed slot
starts the next claimed job itself (:mod:`jobstream.workers.slots`), and every append is
pipelined, so many jobs' events share each round trip to the server. What every held
job needs now and then (lease renewal, checking its subject) is done for all of them by
one lease loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import socket
import time

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from nats.aio.msg import Msg
from nats.js.api import ConsumerInfo
from nats.js.object_store import ObjectStore

from jobstream.events import WorkerStarted, WorkerStopped
from jobstream.model import JobNotice, Resources, WorkerHeartbeat, WorkerState, WorkItem
from jobstream.streams.connection import Connection
from jobstream.streams.repository import JobRepository
from jobstream.streams.setup import POOL_KEY, REQUIREMENT_KEY, ensure_logs
from jobstream.streams.subjects import (
    WORK_STREAM,
    cancel_notice_subject,
    consumer_created_subject,
    lease_probe_subject,
)
from jobstream.workers.attempt import Attempt
from jobstream.workers.capacity import Capacity
from jobstream.workers.context import JobFolders, WorkerContext, WorkerOptions
from jobstream.workers.guardian import Guardian
from jobstream.workers.heartbeat import HEARTBEAT_S, Heartbeats, running_jobs
from jobstream.workers.outputs import OutputFiles
from jobstream.workers.prefetch import ClassPace
from jobstream.workers.probe import FREE, HELD, holder_answers, probe_window
from jobstream.workers.process import seal_inherited_fds
from jobstream.workers.slots import Launch, Slots

log = logging.getLogger(__name__)
_item_decoder = msgspec.json.Decoder(WorkItem)
_notice_decoder = msgspec.json.Decoder(JobNotice)

BIND_INTERVAL_S = 1.0  # between looks for new class consumers, advisories aside
FETCH_WAIT_S = 1.0
MAX_BATCH = 256
RETRY_DELAY_S = 1.0
APPEND_PATIENCE_S = 300.0  # how long a finished job's result waits for the server


def _read_notice(msg: Msg, what: str) -> JobNotice | None:
    """The job a control message names; None (logged) when it is malformed."""
    try:
        return _notice_decoder.decode(msg.data)
    except msgspec.DecodeError:
        log.warning("ignored a malformed %s: %r", what, msg.data[:200])
        return None


class Worker:
    """One worker process (or one task inside ``jobstream run``)."""

    def __init__(self, conn: Connection, options: WorkerOptions) -> None:
        self.conn = conn
        self.options = options
        self.id = options.worker_id
        self.capacity = Capacity(options.capacity)
        self.started_at = time.monotonic()
        self.last_busy = time.monotonic()
        self.bound: set[str] = set()
        self.paces: dict[str, ClassPace] = {}
        self.wakeups: dict[str, anyio.Event] = {}  # per class loop: demand may have changed
        self.runs: dict[tuple[str, int], Attempt] = {}  # held jobs, for notices and leases
        deadline = self.started_at + options.walltime_s
        self.slots = Slots(self.capacity, bool(options.capacity.num_gpus), deadline)
        # One thread per running job (blocked in waitid while its process runs).
        self.launch_threads = anyio.CapacityLimiter(math.inf)
        self.jobs_run = 0
        self.stop_reason = "stopped"
        self.host = socket.gethostname()
        self.outputs = OutputFiles(options.log_dir, self.id)
        self.state = WorkerState.RUNNING
        self.heartbeats = Heartbeats(conn.js, conn.replicas, self.heartbeat)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Work until idle-timeout or walltime (or cancellation); running jobs finish first."""
        seal_inherited_fds()
        guardian = await anyio.to_thread.run_sync(Guardian)
        try:
            await self._serve(guardian, task_status)
        finally:
            with anyio.CancelScope(shield=True):  # every job has ended: it ends none
                await anyio.to_thread.run_sync(guardian.close)

    async def _serve(self, guardian: Guardian, task_status: TaskStatus[None]) -> None:
        logs = await ensure_logs(self.conn.js, self.conn.replicas)
        notices = await self.conn.nc.subscribe(
            cancel_notice_subject(self.id), cb=self._on_cancel_notice
        )
        probes = await self.conn.nc.subscribe(lease_probe_subject(self.id), cb=self._on_lease_probe)
        await self._announce(
            WorkerStarted(
                at=time.time(),
                actor=self.id,
                worker=self.id,
                host=self.host,
                capacity=self.options.capacity,
                pools=self.options.pools,
                walltime_s=min(self.options.walltime_s, 1e12),
                slurm_job_id=self.options.slurm_job_id,
            )
        )
        try:
            async with anyio.create_task_group() as leases:
                leases.start_soon(self._lease_loop)
                leases.start_soon(self.heartbeats.run)
                # Jobs outlive the fetchers: stopping fetchers lets held jobs finish.
                async with anyio.create_task_group() as jobs:

                    def start_launches(launch: Launch) -> None:
                        jobs.start_soon(self._launch_thread, launch)

                    self.slots.attach(
                        asyncio.get_running_loop().call_soon_threadsafe,
                        start_launches,
                        self.nudge,
                        guardian,
                    )
                    ctx = self._context(logs, jobs)
                    async with anyio.create_task_group() as fetchers:
                        fetchers.start_soon(self._bind_loop, fetchers, ctx)
                        fetchers.start_soon(self._watch_stop, fetchers)
                        task_status.started()
                    self.state = WorkerState.STOPPING  # the held jobs finish
                    self.heartbeats.nudge()
                leases.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await anyio.to_thread.run_sync(self.outputs.close)
                for subscription in (notices, probes):
                    with contextlib.suppress(Exception):
                        await subscription.unsubscribe()
                await self._announce(
                    WorkerStopped(
                        at=time.time(),
                        actor=self.id,
                        worker=self.id,
                        reason=self.stop_reason,
                        jobs_run=self.jobs_run,
                    )
                )
                self.state = WorkerState.STOPPED
                await self.heartbeats.put()

    def heartbeat(self) -> WorkerHeartbeat:
        """How this worker is now, for its entry in the WORKERS bucket."""
        now, clock = time.time(), time.monotonic()
        started_at, walltime = now - (clock - self.started_at), self.options.walltime_s
        return WorkerHeartbeat(
            id=self.id,
            host=self.host,
            pid=os.getpid(),
            pools=self.options.pools,
            capacity=self.options.capacity,
            cpus_used=self.capacity.cpus_used,
            memory_used_mib=self.capacity.memory_used,
            gpus_used=self.capacity.total.num_gpus - len(self.capacity.free_gpus),
            running=running_jobs(self.runs.values(), now, clock),
            held=len(self.runs),
            jobs_run=self.jobs_run,
            started_at=started_at,
            heartbeat_at=now,
            interval_s=HEARTBEAT_S,
            walltime_end=started_at + walltime if walltime < 1e12 else None,
            state=self.state,
        )

    def _context(self, logs: ObjectStore, jobs: TaskGroup) -> WorkerContext:
        """What the attempts share, once the LOGS store and the jobs' task group exist."""
        return WorkerContext(
            worker_id=self.id,
            host=self.host,
            options=self.options,
            jobs=JobRepository(self.conn.store, patience_s=APPEND_PATIENCE_S),
            pipeline=self.conn.pipeline,
            slots=self.slots,
            outputs=self.outputs,
            logs=logs,
            background=jobs,
            folders=JobFolders(self.options.workdir),
            base_env=dict(os.environ),
            stop_reason=lambda: self.stop_reason,
            holder_answers=functools.partial(
                holder_answers, self.conn.nc, probe_window(self.options.lease_s)
            ),
        )

    async def _announce(self, event: WorkerStarted | WorkerStopped) -> None:
        with contextlib.suppress(Exception):
            await self.conn.store.append(event, None)

    async def _on_cancel_notice(self, msg: Msg) -> None:
        notice = _read_notice(msg, "cancel notice")
        run = self.runs.get((notice.wf, notice.job)) if notice else None
        if run is not None:
            run.cancel()

    async def _on_lease_probe(self, msg: Msg) -> None:
        """Another worker was given this worker's dispatch again: say whether the job is
        still held here (then renew its lease at once). A malformed probe is not answered."""
        notice = _read_notice(msg, "lease probe")
        if notice is None:
            return
        run = self.runs.get((notice.wf, notice.job))
        if run is not None:
            await run.renew_lease()
        with contextlib.suppress(Exception):
            await msg.respond(HELD if run is not None else FREE)

    async def _lease_loop(self) -> None:
        """Every lease/3: renew the dispatch of every held job, then look at the subject
        of each job running that long (a missed cancel notice, or another worker's
        takeover). The looks run side by side and within the period: a server slow to
        answer them (restarting) must not hold up the next renewals."""
        period = self.options.lease_s / 3
        while True:
            await anyio.sleep(period)
            due = time.monotonic() - period
            runs = [run for run in self.runs.values() if run.held_since <= due]
            for run in runs:
                await run.renew_lease()
            with anyio.move_on_after(period / 2):
                async with anyio.create_task_group() as checks:
                    for run in runs:
                        if run.running_since <= due:
                            checks.start_soon(run.check_subject)

    async def _watch_stop(self, fetchers: TaskGroup) -> None:
        while True:
            await anyio.sleep(0.2)
            if self.slots.time_left() <= 0:
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

    async def _bind_loop(self, fetchers: TaskGroup, ctx: WorkerContext) -> None:
        """Bind to new class consumers as the scheduler creates them: at once when the
        server announces one (its consumer-created advisory), else at the next look.

        Listing the consumers often enough to start a new class's jobs promptly would
        cost a request every fraction of a second; the looks remain, once a second, for
        an advisory missed while the connection was down.
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
                        fetchers.start_soon(self._class_loop, info.name, need, ctx)
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
        fits = need.fits_in(self.capacity.total) and self.slots.fits_time_left(need)
        return need if fits else None

    async def _class_loop(self, consumer: str, need: Resources, ctx: WorkerContext) -> None:
        """Fetch the dispatches of one class that this worker should hold, and run them.

        Nothing is reserved while a fetch waits: a loop polling an empty class must not
        starve the others.
        """
        pace = self.paces.setdefault(consumer, ClassPace(self.capacity.how_many_fit_empty(need)))
        sub = await self.conn.js.pull_subscribe_bind(durable=consumer, stream=WORK_STREAM)
        try:
            while self.slots.fits_time_left(need):  # else it has too little time left
                want = await self._wait_for_demand(consumer, need, pace)
                try:
                    msgs = await sub.fetch(want, timeout=FETCH_WAIT_S)
                except TimeoutError:  # nats raises its own or asyncio's, both are TimeoutError
                    continue
                except Exception as exc:  # server away: wait for the reconnect
                    log.warning("fetch from %s failed: %s", consumer, exc)
                    await anyio.sleep(RETRY_DELAY_S)
                    continue
                if not msgs:  # a pull request that expired empty: not work
                    continue
                self.last_busy = time.monotonic()
                pace.held += len(msgs)
                for msg in msgs:
                    ctx.background.start_soon(self._run_job, msg, need, pace, ctx)
        finally:
            self.bound.discard(consumer)
            self.wakeups.pop(consumer, None)
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _wait_for_demand(self, consumer: str, need: Resources, pace: ClassPace) -> int:
        """Wait until this class should hold more dispatches; how many more."""
        while (
            want := pace.demand(self.capacity.how_many_fit(need, MAX_BATCH), time.monotonic())
        ) <= 0:
            wakeup = self.wakeups[consumer] = anyio.Event()
            await wakeup.wait()
        return min(want, MAX_BATCH)

    def nudge(self) -> None:
        """Wake the class loops: held jobs or free room changed."""
        for wakeup in self.wakeups.values():
            wakeup.set()

    async def _launch_thread(self, launch: Launch) -> None:
        """Shielded: a launch granted room is always run or, when its job was canceled
        meanwhile, skipped, freeing the room; a worker stopping ends the processes."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.slots.run, launch, limiter=self.launch_threads)

    async def _run_job(
        self, msg: Msg, need: Resources, pace: ClassPace, ctx: WorkerContext
    ) -> None:
        attempt = None
        try:
            attempt = Attempt(ctx, _item_decoder.decode(msg.data), msg, need, pace)
            key = (attempt.item.wf, attempt.item.job)
            if key in self.runs:  # a redelivery of a dispatch this worker holds: it acks that one
                return
            self.runs[key] = attempt
            try:
                ran = await attempt.execute()  # not `+= await`: that reads the count first
                self.jobs_run += ran
            finally:
                del self.runs[key]
        except Exception as exc:  # the dispatch is redelivered after its lease
            log.error("job run failed: %s", exc)
            if attempt is not None:  # its process, if it runs, ends with it: a rerun is alone
                attempt.end_process()
        finally:
            self.last_busy = time.monotonic()
            pace.held -= 1
            self.nudge()
