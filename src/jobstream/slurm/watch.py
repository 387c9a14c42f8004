"""The allocations' lives as Slurm tells them: ``SlurmAllocationStarted`` and
``SlurmAllocationEnded``, written by the server that holds the ``slurm`` lease.

Every ``POLL_S`` it asks Slurm once about all of this user's jobs (one ``squeue``, never
one per allocation or job) and compares with the allocations it has folded from the log
(``ev.slurm.>``, read on from where it stopped). Each event is appended with CAS on its
allocation's subject, so two watchers cannot record one change twice. A job gone from
``squeue`` (Slurm forgets finished jobs after ``MinJobAge``) ends as ``UNKNOWN``.
"""

from __future__ import annotations

import getpass
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import anyio
from anyio.abc import TaskStatus

from jobstream.events import (
    Event,
    SlurmAllocationEnded,
    SlurmAllocationEvent,
    SlurmAllocationStarted,
    SlurmAllocationSubmitted,
)
from jobstream.streams.bulk import read_to_end
from jobstream.streams.connection import Connection
from jobstream.streams.reader import decode_batch
from jobstream.streams.store import Conflict
from jobstream.streams.subjects import allocations_filter

log = logging.getLogger(__name__)
ACTOR = "slurm-watcher"
POLL_S = 5.0
SQUEUE_TIMEOUT_S = 30.0
WAITING = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "RESV_DEL_HOLD"})
ENDED = frozenset(
    {
        "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
        "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED",
    }
)  # fmt: skip
UNKNOWN = "UNKNOWN"


class Seen(NamedTuple):
    """A job as ``squeue`` lists it (``started``: when it started, if it did)."""

    state: str
    nodes_list: str
    started: float | None = None


class Open(NamedTuple):
    """An allocation not yet ended: its job, when it started (None: waiting in Slurm's
    queue), its subject's sequence, and what it was submitted for."""

    slurm_job_id: str
    started_at: float | None
    seq: int
    wf: str
    scheduler: str
    nodes: int


def fold(open_: dict[str, Open], seq: int, event: Event) -> None:
    """Track the allocations not yet ended, from their events."""
    if not isinstance(event, SlurmAllocationEvent):
        return
    if isinstance(event, SlurmAllocationEnded):
        open_.pop(event.allocation, None)
    elif isinstance(event, SlurmAllocationSubmitted):
        open_[event.allocation] = Open(
            event.slurm_job_id, None, seq, event.wf, event.scheduler, event.nodes
        )
    elif isinstance(event, SlurmAllocationStarted) and event.allocation in open_:
        job, _, _, wf, scheduler, nodes = open_[event.allocation]
        open_[event.allocation] = Open(job, event.at, seq, wf, scheduler, nodes)


def decide(open_: dict[str, Open], seen: dict[str, Seen], now: float) -> list[tuple[Event, int]]:
    """What Slurm's answer makes true of the open allocations: events, each with the
    sequence its allocation's subject is expected at."""
    found: list[tuple[Event, int]] = []
    for allocation, known in sorted(open_.items()):
        job, job_id = seen.get(known.slurm_job_id), known.slurm_job_id
        ran_unseen = job is not None and known.started_at is None and bool(job.nodes_list)
        if job is not None and job.state in ENDED and ran_unseen:
            # It started and ended between two looks: its start now, its end next time.
            started = SlurmAllocationStarted(
                at=job.started or now, actor=ACTOR, allocation=allocation,
                slurm_job_id=job_id, nodes_list=job.nodes_list,
            )  # fmt: skip
            found.append((started, known.seq))
        elif job is None or job.state in ENDED:
            state = UNKNOWN if job is None else job.state
            ended = SlurmAllocationEnded(
                at=now, actor=ACTOR, allocation=allocation, slurm_job_id=job_id, state=state
            )
            found.append((ended, known.seq))
        elif known.started_at is None and job.state not in WAITING:
            started = SlurmAllocationStarted(
                at=job.started or now, actor=ACTOR, allocation=allocation,
                slurm_job_id=job_id, nodes_list=job.nodes_list,
            )  # fmt: skip
            found.append((started, known.seq))
    return found


def parse_squeue(text: str) -> dict[str, Seen]:
    """``squeue -h -t all -o %i|%T|%N|%S`` lines by job id (an array's tasks by their
    id); the start time is Slurm's local time, or N/A."""
    seen = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[0]:
            state = parts[1].split()[0] if parts[1] else ""
            seen[parts[0]] = Seen(state, parts[2], _local_time(parts[3]))
    return seen


def _local_time(text: str) -> float | None:
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


async def squeue() -> dict[str, Seen]:
    """This user's jobs as Slurm knows them now, in one call."""
    command = ["squeue", "-h", "-t", "all", "-u", getpass.getuser(), "-o", "%i|%T|%N|%S"]
    with anyio.fail_after(SQUEUE_TIMEOUT_S):
        done = await anyio.run_process(command, check=False)
    if done.returncode != 0:
        raise RuntimeError(" ".join(done.stderr.decode(errors="replace").split()))
    return parse_squeue(done.stdout.decode())


class SlurmWatcher:
    """Records when allocations start and end (a Service: runs until cancelled, or until
    ``after_poll`` says it is done).

    ``ended(allocation)`` is called for every allocation that ended, once per watcher
    (also for those that ended before it started: whatever was to follow an end is made
    good). ``after_poll(watcher)`` runs once per interval after Slurm was asked
    (autoalloc, :mod:`jobstream.host.autoalloc`); it returns True when the watcher is to
    stop.
    """

    def __init__(
        self,
        conn: Connection,
        poll_s: float = POLL_S,
        *,
        ended: Callable[[str], Awaitable[None]] | None = None,
        after_poll: Callable[[SlurmWatcher], Awaitable[bool]] | None = None,
    ) -> None:
        self.conn = conn
        self.poll_s = poll_s
        self.open: dict[str, Open] = {}
        self.recorded: set[str] = set()  # every allocation the log has
        self.read_to = 0
        self.ended = ended
        self.after_poll = after_poll

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._read_on()
            if self.open:
                try:
                    seen = await squeue()
                except (RuntimeError, TimeoutError, OSError) as exc:
                    log.warning("squeue failed (%s); asking again in %g s", exc, self.poll_s)
                else:
                    await self._record(decide(self.open, seen, time.time()))
            if self.after_poll is not None and await self.after_poll(self):
                return
            await anyio.sleep(self.poll_s)

    async def _fold(self, seq: int, event: Event) -> None:
        fold(self.open, seq, event)
        if isinstance(event, SlurmAllocationEvent):
            self.recorded.add(event.allocation)
        if isinstance(event, SlurmAllocationEnded) and self.ended is not None:
            try:
                await self.ended(event.allocation)
            except Exception as exc:  # its identity stays until the next watcher's start
                log.warning("allocation %s ended, not retired: %s", event.allocation, exc)

    async def _read_on(self) -> None:
        subject = allocations_filter()
        async with read_to_end(
            self.conn.js, self.conn.endpoint, subject, from_seq=self.read_to + 1
        ) as batches:
            async for raw in batches:
                for stored in decode_batch(raw).events:
                    await self._fold(stored.seq, stored.event)
                if raw.seqs:
                    self.read_to = raw.seqs[-1]

    async def _record(self, events: list[tuple[Event, int]]) -> None:
        for event, expected in events:
            try:
                seq = await self.conn.store.append(event, expected)
            except Conflict:
                continue  # another watcher recorded a change first: read on next time
            await self._fold(seq, event)
