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
    """A job as ``squeue`` lists it."""

    state: str
    nodes_list: str


class Open(NamedTuple):
    """An allocation not yet ended: its job, whether it started, its subject's sequence."""

    slurm_job_id: str
    started: bool
    seq: int


def fold(open_: dict[str, Open], seq: int, event: Event) -> None:
    """Track the allocations not yet ended, from their events."""
    if not isinstance(event, SlurmAllocationEvent):
        return
    if isinstance(event, SlurmAllocationEnded):
        open_.pop(event.allocation, None)
    elif isinstance(event, SlurmAllocationSubmitted):
        open_[event.allocation] = Open(event.slurm_job_id, False, seq)
    elif isinstance(event, SlurmAllocationStarted) and event.allocation in open_:
        open_[event.allocation] = Open(event.slurm_job_id, True, seq)


def decide(open_: dict[str, Open], seen: dict[str, Seen], now: float) -> list[tuple[Event, int]]:
    """What Slurm's answer makes true of the open allocations: events, each with the
    sequence its allocation's subject is expected at."""
    found: list[tuple[Event, int]] = []
    for allocation, known in sorted(open_.items()):
        job, job_id = seen.get(known.slurm_job_id), known.slurm_job_id
        if job is None or job.state in ENDED:
            state = UNKNOWN if job is None else job.state
            ended = SlurmAllocationEnded(
                at=now, actor=ACTOR, allocation=allocation, slurm_job_id=job_id, state=state
            )
            found.append((ended, known.seq))
        elif not known.started and job.state not in WAITING:
            started = SlurmAllocationStarted(
                at=now, actor=ACTOR, allocation=allocation, slurm_job_id=job_id,
                nodes_list=job.nodes_list,
            )  # fmt: skip
            found.append((started, known.seq))
    return found


def parse_squeue(text: str) -> dict[str, Seen]:
    """``squeue -h -t all -o %i|%T|%N`` lines by job id (an array's tasks by their id)."""
    seen = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0]:
            seen[parts[0]] = Seen(parts[1].split()[0] if parts[1] else "", parts[2])
    return seen


async def squeue() -> dict[str, Seen]:
    """This user's jobs as Slurm knows them now, in one call."""
    command = ["squeue", "-h", "-t", "all", "-u", getpass.getuser(), "-o", "%i|%T|%N"]
    with anyio.fail_after(SQUEUE_TIMEOUT_S):
        done = await anyio.run_process(command, check=False)
    if done.returncode != 0:
        raise RuntimeError(" ".join(done.stderr.decode(errors="replace").split()))
    return parse_squeue(done.stdout.decode())


class SlurmWatcher:
    """Records when allocations start and end (a Service: runs until cancelled)."""

    def __init__(self, conn: Connection, poll_s: float = POLL_S) -> None:
        self.conn = conn
        self.poll_s = poll_s
        self.open: dict[str, Open] = {}
        self.read_to = 0

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
            await anyio.sleep(self.poll_s)

    async def _read_on(self) -> None:
        subject = allocations_filter()
        async with read_to_end(
            self.conn.js, self.conn.endpoint, subject, from_seq=self.read_to + 1
        ) as batches:
            async for raw in batches:
                for stored in decode_batch(raw).events:
                    fold(self.open, stored.seq, stored.event)
                if raw.seqs:
                    self.read_to = raw.seqs[-1]

    async def _record(self, events: list[tuple[Event, int]]) -> None:
        for event, expected in events:
            try:
                seq = await self.conn.store.append(event, expected)
            except Conflict:
                continue  # another watcher recorded a change first: read on next time
            fold(self.open, seq, event)
