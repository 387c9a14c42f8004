"""Automatic allocation, the shell: once per interval of the allocation watcher, submit
the allocations that :func:`jobstream.slurm.autoalloc.plan` decides on.

Two ways to turn it on:

- ``jobstream slurm autoalloc WF`` runs it for one workflow, with the schedulers and
  limits given, until the workflow is finished;
- a spec's ``schedule_nodes`` action triggered ``on_jobs_ready`` turns it on for that
  workflow in the server that holds the watcher's lease, while the workflow is open.

The backlog comes from one listing of the WORK class consumers, Slurm's view from the
watcher's one ``squeue``: nothing here asks about a single job. The watcher also hands
over each allocation that ended (:meth:`Keeper.ended`) and the ones a killed submitter
left unrecorded (:meth:`Keeper.sweep`): their identities are retired.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import anyio

from jobstream.config import Settings
from jobstream.errors import JobstreamError
from jobstream.events import (
    Event,
    WorkflowArchived,
    WorkflowCompleted,
    WorkflowRestarted,
    WorkflowSubmitted,
)
from jobstream.host.allocations import cancel_unrecorded, orphans, retire, schedule_nodes
from jobstream.host.supervise import supervised
from jobstream.ops.workflows import submitted_workflow
from jobstream.slurm.autoalloc import (
    STARTING_S,
    Backoff,
    Limits,
    Offer,
    OpenAllocation,
    offers_of,
    plan,
)
from jobstream.slurm.watch import SlurmWatcher
from jobstream.spec.extras import actions_enable
from jobstream.streams.bulk import read_to_end
from jobstream.streams.connection import Connection
from jobstream.streams.reader import decode_batch
from jobstream.streams.setup import POOL_KEY, REQUIREMENT_KEY
from jobstream.streams.subjects import WORK_STREAM, all_workflows_filter, workflow_subjects

log = logging.getLogger(__name__)
Say = Callable[[str], None]


class Target(NamedTuple):
    """One workflow that autoalloc submits allocations for."""

    wf: str
    offers: tuple[Offer, ...]
    limits: Limits
    caps: dict[str, int] = {}  # open allocations per scheduler (a spec's actions)


class Keeper:
    """Autoalloc and the retirement of allocations' identities, for one watcher."""

    def __init__(
        self,
        conn: Connection,
        settings: Settings,
        *,
        target: Target | None = None,
        say: Say = log.info,
    ) -> None:
        """With a ``target``, autoalloc for that workflow alone until it is finished;
        without, for every workflow whose actions turn it on (with the settings' limits)."""
        self.conn = conn
        self.settings = settings
        self.only = target
        self.limits = limits_of(settings)
        self.idle_timeout_s = settings.autoalloc_idle_timeout_s
        self.poll_s = settings.slurm_poll_s
        self.say = say
        self.targets: dict[str, Target] = {} if target is None else {target.wf: target}
        self.finished: set[str] = set()
        self.backoffs: dict[str, Backoff] = {}
        self.told: set[tuple[str, str]] = set()  # (wf, class) said to be unserved
        self.read_to = 0
        self.submitted = 0

    def watcher(self) -> SlurmWatcher:
        return SlurmWatcher(self.conn, self.poll_s, ended=self.ended, after_poll=self.after_poll)

    async def ended(self, allocation: str) -> None:
        """Retire its identity (in a thread: the users file, and nats-server told)."""
        if await anyio.to_thread.run_sync(retire, self.settings.state_dir, allocation):
            self.say(f"allocation {allocation} ended: its identity is revoked")

    async def after_poll(self, watcher: SlurmWatcher) -> bool:
        """Retire left-over identities, then submit what the backlog needs; True once the
        one workflow asked for is finished."""
        await anyio.to_thread.run_sync(self.sweep, watcher.recorded)
        await self._read_on()
        active = [t for wf, t in self.targets.items() if wf not in self.finished]
        if active:
            backlog = await self._backlog()
            for target in active:
                await self._serve(target, backlog, watcher)
        return self.only is not None and self.only.wf in self.finished

    def sweep(self, recorded: set[str]) -> None:
        for allocation in orphans(self.settings.state_dir, recorded, time.time()):
            canceled = cancel_unrecorded(self.settings.state_dir, allocation)
            retire(self.settings.state_dir, allocation)
            jobs = f"; Slurm job {', '.join(canceled)} canceled" if canceled else ""
            self.say(f"allocation {allocation} was never recorded: identity revoked{jobs}")

    async def _read_on(self) -> None:
        """Fold the workflows' own events: which ones turn autoalloc on, which finished."""
        subject = all_workflows_filter() if self.only is None else workflow_subjects(self.only.wf)
        async with read_to_end(
            self.conn.js, self.conn.endpoint, subject, from_seq=self.read_to + 1
        ) as batches:
            async for raw in batches:
                for stored in decode_batch(raw).events:
                    self._fold(stored.event)
                if raw.seqs:
                    self.read_to = raw.seqs[-1]

    def _fold(self, event: Event) -> None:
        if isinstance(event, WorkflowSubmitted) and self.only is None:
            caps = actions_enable(event.extras)
            if caps:
                try:
                    offers = offers_of(event.extras, event.wf, list(caps))
                except JobstreamError as exc:
                    self.say(f"workflow {event.wf}: no autoalloc: {exc}")
                    return
                self.targets[event.wf] = Target(event.wf, offers, self.limits, caps)
        elif isinstance(event, WorkflowCompleted | WorkflowArchived):
            self.finished.add(event.wf)
        elif isinstance(event, WorkflowRestarted):
            self.finished.discard(event.wf)

    async def _backlog(self) -> dict[str, int]:
        """Dispatches waiting for a worker, per hardware class of this pool."""
        backlog: dict[str, int] = {}
        for info in await self.conn.js.consumers_info(WORK_STREAM):
            meta = info.config.metadata or {}
            if meta.get(POOL_KEY) == self.settings.pool and meta.get(REQUIREMENT_KEY):
                name = meta[REQUIREMENT_KEY]
                backlog[name] = backlog.get(name, 0) + (info.num_pending or 0)
        return backlog

    async def _serve(self, target: Target, backlog: dict[str, int], watcher: SlurmWatcher) -> None:
        wf = target.wf
        settled = time.time() - STARTING_S  # started before: its workers take work by now
        mine = [
            OpenAllocation(each.scheduler, each.nodes, (each.started_at or math.inf) < settled)
            for each in watcher.open.values()
            if each.wf == wf
        ]
        decided = plan(backlog, target.offers, mine, target.limits, target.caps)
        for hardware_class in decided.unserved:
            if (wf, hardware_class) not in self.told:
                self.told.add((wf, hardware_class))
                self.say(f"workflow {wf}: no scheduler can run class {hardware_class}")
        backoff = self.backoffs.setdefault(wf, Backoff(target.limits))
        for scheduler in decided.submit:
            if not backoff.ready(time.monotonic()):
                return
            try:
                (made,) = await schedule_nodes(
                    self.conn, self.settings, wf, scheduler, 1, True, self.idle_timeout_s
                )
            except (JobstreamError, OSError) as exc:
                wait = backoff.failed(time.monotonic())
                self.say(f"workflow {wf}: submitting to {scheduler} failed ({exc}); "
                         f"next try in {wait:g} s")  # fmt: skip
                return
            backoff.succeeded()
            self.submitted += 1
            self.say(
                f"workflow {wf}: allocation {made.identity} submitted (Slurm job "
                f"{made.slurm_job_id}, scheduler {scheduler}: "
                f"{decided.waiting[scheduler]} jobs wait for it)"
            )


def limits_of(settings: Settings) -> Limits:
    """Autoalloc's limits as the settings give them (``autoalloc_*``)."""
    return Limits(max_queued=settings.autoalloc_max_queued, max_nodes=settings.autoalloc_max_nodes)


async def autoalloc(
    conn: Connection,
    settings: Settings,
    wf: str,
    schedulers: Sequence[str],
    limits: Limits | None = None,
    say: Say = log.info,
) -> int:
    """``jobstream slurm autoalloc WF``: submit allocations for the workflow's backlog
    until it is finished (every ``slurm_poll_s``; limits: the settings' unless given);
    how many were submitted. A one-line error, before anything is submitted, for a
    workflow without those schedulers, an archived one, or limits out of range."""
    submitted = await submitted_workflow(conn.store, wf)
    chosen = (limits or limits_of(settings)).checked()
    keeper = Keeper(
        conn, settings, target=Target(wf, offers_of(submitted.extras, wf, schedulers), chosen),
        say=say,
    )  # fmt: skip
    await supervised("autoalloc", keeper.watcher)  # through server restarts, until finished
    return keeper.submitted
