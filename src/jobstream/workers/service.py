"""The worker: bind to every class consumer that fits, pack jobs, run them, report.

For each WORK message: claim the job with CAS on the dispatch's JobReady sequence (a
stale or duplicate dispatch is refused by the server and dropped), spawn the command,
append JobStarted, renew the lease (``in_progress``) while it runs, store its output,
append JobCompleted/JobFailed with CAS on its own JobStarted, then ack.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from nats.aio.msg import Msg
from nats.js.api import ConsumerInfo

from jobstream.codec import TYPE_HEADER
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
from jobstream.model import JobState, Resources, RetryRule, WorkItem, retry_rule_for
from jobstream.streams.connection import Connection
from jobstream.streams.setup import POOL_KEY, REQUIREMENT_KEY, ensure_logs
from jobstream.streams.store import Conflict, EventStore
from jobstream.streams.subjects import WORK_STREAM, job_subject, log_object
from jobstream.workers.capacity import Capacity, Reservation
from jobstream.workers.process import (
    shell_command,
    spawn_failure,
    start_process,
    tail_text,
    terminate,
    wait_within,
)

log = logging.getLogger(__name__)
_item_decoder = msgspec.json.Decoder(WorkItem)
BIND_INTERVAL_S = 0.25
FETCH_WAIT_S = 1.0
MAX_BATCH = 64
NAK_DELAY_S = 0.2
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
    """One worker process (or one task inside ``jobstream run``)."""

    def __init__(self, conn: Connection, options: WorkerOptions) -> None:
        self.conn = conn
        self.options = options
        self.id = options.worker_id
        self.store = EventStore(conn.js, conn.pipeline)
        self.capacity = Capacity(options.capacity)
        self.changed = anyio.Condition()
        self.started_at = time.monotonic()
        self.last_busy = time.monotonic()
        self.bound: set[str] = set()
        self.jobs_run = 0
        self.stop_reason = "stopped"
        slots = max(1, options.capacity.num_cpus) * 2
        self.threads = anyio.CapacityLimiter(slots + 2)
        self.host = socket.gethostname()

    def remaining_s(self) -> float:
        return self.options.walltime_s - (time.monotonic() - self.started_at)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Work until idle-timeout or walltime (or cancellation); running jobs finish first."""
        self.logs = await ensure_logs(self.conn.js)
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
            # Jobs outlive the fetchers: stopping fetchers lets running jobs finish.
            async with anyio.create_task_group() as jobs, anyio.create_task_group() as fetchers:
                fetchers.start_soon(self._bind_loop, fetchers, jobs)
                fetchers.start_soon(self._watch_stop, fetchers)
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
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
                and (idle_for >= self.options.idle_timeout_s)
            ):
                self.stop_reason = "idle"
                break
        fetchers.cancel_scope.cancel()

    async def _bind_loop(self, fetchers: TaskGroup, jobs: TaskGroup) -> None:
        """Bind to new class consumers as the scheduler creates them."""
        while True:
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
            await anyio.sleep(BIND_INTERVAL_S)

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
        """Fetch as many jobs of one class as fit right now, and start them.

        Nothing is reserved while a fetch waits: a loop polling an empty class must not
        starve the others. When a fetched job no longer fits (another class took the
        room meanwhile), it goes back to the queue with a short delay.
        """
        sub = await self.conn.js.pull_subscribe_bind(durable=consumer, stream=WORK_STREAM)
        try:
            while need.runtime_s <= self.remaining_s():
                room = await self._wait_for_room(need)
                try:
                    msgs = await sub.fetch(room, timeout=FETCH_WAIT_S)
                except TimeoutError:  # nats raises its own or asyncio's, both are TimeoutError
                    continue
                except Exception as exc:  # server away: wait for the reconnect
                    log.warning("fetch from %s failed: %s", consumer, exc)
                    await anyio.sleep(RETRY_DELAY_S)
                    continue
                for msg in msgs:
                    reservation = await self._try_reserve(need)
                    if reservation is None:
                        await msg.nak(delay=NAK_DELAY_S)
                        continue
                    self.last_busy = time.monotonic()
                    jobs.start_soon(self._run_job, msg, reservation)
        finally:
            self.bound.discard(consumer)
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _wait_for_room(self, need: Resources) -> int:
        """Wait until at least one job of this class fits; how many fit now."""
        async with self.changed:
            while not self.capacity.fits_now(need):
                await self.changed.wait()
            return self.capacity.how_many_fit(need, MAX_BATCH)

    async def _try_reserve(self, need: Resources) -> Reservation | None:
        async with self.changed:
            return self.capacity.reserve(need) if self.capacity.fits_now(need) else None

    async def _release(self, reservations: list[Reservation]) -> None:
        if not reservations:
            return
        async with self.changed:
            for reservation in reservations:
                self.capacity.release(reservation)
            self.changed.notify_all()

    async def _run_job(self, msg: Msg, reservation: Reservation) -> None:
        try:
            item = _item_decoder.decode(msg.data)
            await JobRun(self, item, msg, reservation).execute()
        except Exception as exc:  # the dispatch is redelivered after its lease
            log.error("job run failed: %s", exc)
        finally:
            self.last_busy = time.monotonic()
            with anyio.CancelScope(shield=True):
                await self._release([reservation])


class JobRun:
    """One attempt of one job on this worker, from claim to the event that ends it."""

    def __init__(self, worker: Worker, item: WorkItem, msg: Msg, reservation: Reservation):
        self.worker = worker
        self.item = item
        self.msg = msg
        self.reservation = reservation
        self.job = Job(
            wf=item.wf,
            index=item.job,
            state=JobState.READY,
            attempt=item.attempts_before,
            spec=item.spec,
        )
        self.seq = item.ready_seq
        self.canceled = False

    async def _append(self, events: list[JobEvent]) -> bool:
        """Append with CAS on the last event this attempt wrote; False when fenced off."""
        for event in events:
            try:
                self.seq = await self._append_retrying(event)
            except Conflict:
                return False
            self.job = evolve(self.job, event)
        return True

    async def _append_retrying(self, event: JobEvent) -> int:
        """Retry through a server restart: the same append is recognised, never doubled."""
        deadline = time.monotonic() + APPEND_PATIENCE_S
        while True:
            try:
                return await self.worker.store.append(event, self.seq)
            except Conflict:
                raise
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("append of %s failed (%s); retrying", type(event).__name__, exc)
                await anyio.sleep(RETRY_DELAY_S)

    async def execute(self) -> None:
        w, spec = self.worker, self.item.spec
        claim = Claim(at=time.time(), actor=w.id, worker=w.id, lease_s=w.options.lease_s)
        if not await self._append(decide(self.job, claim)) and not await self._take_over():
            log.info("job %s.%d: dispatch is stale, dropped", self.item.wf, self.item.job)
            await self._ack()
            return
        folder = w.options.log_dir / self.item.wf / str(self.item.job) / str(self.job.attempt)
        await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
        stdout, stderr = folder / "stdout", folder / "stderr"
        began = time.monotonic()
        process = await start_process(
            shell_command(spec.command, spec.invocation_script),
            cwd=self._workdir(),
            env=self._env(),
            stdout=stdout,
            stderr=stderr,
            limiter=w.threads,
        )
        timed_out = False
        if process is None:
            outcome = spawn_failure(began)
        else:
            start = Start(
                at=time.time(),
                actor=w.id,
                worker=w.id,
                pid=process.pid,
                host=w.host,
                gpu_ids=self.reservation.gpu_ids,
            )
            if not await self._append(decide(self.job, start)):
                await terminate(process)  # fenced off: another worker holds the job now
                return
            try:
                async with anyio.create_task_group() as lease:
                    lease.start_soon(self._renew_lease)
                    lease.start_soon(self._watch_cancel, process)
                    outcome, timed_out = await wait_within(
                        process, began, spec.resources.runtime_s, w.threads, w.options.term_grace_s
                    )
                    lease.cancel_scope.cancel()
            except anyio.get_cancelled_exc_class():
                # The worker is stopping (SIGTERM, end of allocation): the process group was
                # terminated; record it so the job is dispatched again at once.
                with anyio.CancelScope(shield=True), anyio.move_on_after(TERMINATE_RECORD_S):
                    await self._record_terminated(process.returncode, began)
                raise
        await self._store_logs(stdout, stderr)
        rule = (
            None
            if timed_out
            else retry_rule_for(spec.retry_rules, outcome.return_code, self.item.retries)
        )
        recovered = (
            await self._recover(spec.retry_rules[rule], folder) if rule is not None else None
        )
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
            stdout=str(stdout),
            stderr=str(stderr),
            stderr_tail=await anyio.to_thread.run_sync(tail_text, stderr),
        )
        if await self._append(decide(self.job, finish)):
            w.jobs_run += 1
            await self._ack()

    async def _recover(self, rule: RetryRule, folder: Path) -> int | None:
        """Run the rule's recovery script before the retry; its return code is recorded."""
        if not rule.recovery_script:
            return None
        w = self.worker
        began = time.monotonic()
        process = await start_process(
            shell_command(rule.recovery_script, None),
            cwd=self._workdir(),
            env=self._env(),
            stdout=folder / "recovery.stdout",
            stderr=folder / "recovery.stderr",
            limiter=w.threads,
        )
        if process is None:
            return spawn_failure(began).return_code
        outcome, _ = await wait_within(
            process, began, self.item.spec.resources.runtime_s, w.threads, w.options.term_grace_s
        )
        return outcome.return_code

    async def _take_over(self) -> bool:
        """A redelivered dispatch whose job another worker holds: that worker stopped
        renewing the lease (JetStream redelivers only then), so its attempt is lost."""
        if self.msg.metadata.num_delivered <= 1:
            return False
        last = await self.worker.store.last(job_subject(self.item.wf, self.item.job))
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

    async def _watch_cancel(self, process: subprocess.Popen[bytes]) -> None:
        """Terminate the process as soon as the job is canceled (its subject says so)."""
        subject = job_subject(self.item.wf, self.item.job)
        sub = await self.worker.conn.nc.subscribe(subject)
        try:
            last = await self.worker.store.last(subject)  # canceled before we listened?
            canceled = last is not None and isinstance(last.event, JobCanceled)
            if not canceled:
                async for msg in sub.messages:
                    if (msg.headers or {}).get(TYPE_HEADER) == "JobCanceled":
                        break
            self.canceled = True
            await terminate(process, self.worker.options.term_grace_s)
        finally:
            with anyio.CancelScope(shield=True):
                await sub.unsubscribe()

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
        with contextlib.suppress(Exception):
            await self.msg.ack()

    async def _renew_lease(self) -> None:
        while True:
            await anyio.sleep(self.worker.options.lease_s / 3)
            with contextlib.suppress(Exception):  # a missed renewal is retried next time
                await self.msg.in_progress()

    def _workdir(self) -> str:
        chosen = self.worker.options.workdir or self.item.workdir
        return chosen if chosen and os.path.isdir(chosen) else os.getcwd()

    def _env(self) -> dict[str, str]:
        spec = self.item.spec
        env = {**os.environ, **spec.env}
        env.update(
            JOBSTREAM_WORKFLOW_ID=self.item.wf,
            JOBSTREAM_JOB_INDEX=str(self.item.job),
            JOBSTREAM_JOB_NAME=spec.name,
            JOBSTREAM_ATTEMPT=str(self.job.attempt),
            JOBSTREAM_WORKER_ID=self.worker.id,
        )
        if self.worker.options.capacity.num_gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.reservation.gpu_ids))
        return env

    async def _store_logs(self, stdout: Path, stderr: Path) -> None:
        """Copy non-empty output into the LOGS object store (empty files cost nothing)."""
        for name, path in (("stdout", stdout), ("stderr", stderr)):
            data = await anyio.Path(path).read_bytes()
            if data:
                key = log_object(self.item.wf, self.item.job, self.job.attempt, name)
                await self.worker.logs.put(key, data)
