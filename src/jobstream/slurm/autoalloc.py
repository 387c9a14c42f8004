"""Automatic allocation, the decisions: which allocations to submit for the jobs waiting.

Each interval the shell (:mod:`jobstream.host.autoalloc`) gives :func:`plan` the backlog
per hardware class (dispatches no worker has fetched yet: the class consumers'
``num_pending``), the workflow's schedulers (what an allocation of each offers) and its
allocations not yet ended. A class goes to the smallest scheduler that can run its jobs
(GPUs, memory, nodes, and a walltime at least the jobs' runtime). A scheduler gets one
more allocation while its classes have jobs waiting and all of these hold:

- fewer of its allocations wait in Slurm's queue than jobs wait for it;
- fewer than ``max_queued`` of the workflow's allocations wait in Slurm's queue;
- the workflow's open allocations (queued or running) stay within ``max_nodes`` nodes
  and ``max_allocations`` allocations, and the scheduler's within its cap (a spec
  action's ``num_allocations``).

The schedulers take turns, one allocation each, so that one class's long backlog does
not keep the others' allocations out of the queue.

With no backlog nothing is submitted; the allocations' workers give them back once idle.
A failed submission waits ``backoff_s``, doubled at each failure in a row up to
``max_backoff_s`` (:class:`Backoff`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec

from jobstream.errors import ConfigError
from jobstream.model import Resources
from jobstream.slurm.script import SlurmScheduler, scheduler_named
from jobstream.spec.units import gres_gpus, slurm_mem_mib

STARTING_S = 30.0  # an allocation started this recently still counts as queued


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """How far autoalloc may go for one workflow."""

    max_queued: int = 2  # allocations waiting in Slurm's queue at once
    max_nodes: int = 4  # nodes of the open allocations (queued or running)
    max_allocations: int | None = None  # open allocations; None: max_nodes decides
    backoff_s: float = 30.0  # wait after a failed submission, doubled per failure in a row
    max_backoff_s: float = 600.0

    def checked(self) -> Limits:
        """Itself; ConfigError naming the first limit out of range."""
        for name in ("max_queued", "max_nodes", "max_allocations"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"autoalloc {name.replace('_', '-')} is {value}: give 1 or more")
        if not 0 < self.backoff_s <= self.max_backoff_s:
            raise ConfigError(
                f"autoalloc backoff {self.backoff_s:g} s must be above 0 and at most "
                f"{self.max_backoff_s:g} s"
            )
        return self


class Offer(NamedTuple):
    """What one allocation of a scheduler gives each node's worker (None: not limited
    by the script; Slurm's node has what it has)."""

    scheduler: SlurmScheduler
    gpus: int
    memory_mib: int | None
    walltime_s: float

    def serves(self, need: Resources) -> bool:
        return (
            need.num_gpus <= self.gpus
            and (self.memory_mib is None or need.memory_mib <= self.memory_mib)
            and need.num_nodes <= 1  # one worker per node: a job runs on one
            and need.runtime_s <= self.walltime_s
        )

    def size(self) -> tuple[float, ...]:
        """Smaller first: the scheduler a class goes to when several can run it."""
        memory = math.inf if self.memory_mib is None else self.memory_mib
        return (self.gpus, memory, self.scheduler.nodes, self.walltime_s)


def offer_of(scheduler: SlurmScheduler) -> Offer:
    """What the scheduler's allocations offer; ConfigError naming an unreadable field."""
    walltime = scheduler.walltime_s()
    try:
        gpus, mib = gres_gpus(scheduler.gres), slurm_mem_mib(scheduler.mem)
    except ValueError as exc:
        raise ConfigError(f"slurm scheduler {scheduler.name!r}: {exc}") from None
    return Offer(scheduler, gpus, mib, walltime)


def offers_of(extras: dict[str, Any], wf: str, names: Sequence[str]) -> tuple[Offer, ...]:
    """The offers of the workflow's named schedulers (all of them when none is named)."""
    if not names:
        names = [str(entry.get("name")) for entry in extras.get("slurm_schedulers") or []]
        if not names:
            raise ConfigError(f"workflow {wf} has no slurm_schedulers to allocate with")
    return tuple(offer_of(scheduler_named(extras, name, wf)) for name in names)


class OpenAllocation(NamedTuple):
    """One of the workflow's allocations not yet ended; ``started``: for ``STARTING_S``
    at least (until its workers have had time to fetch, it counts as queued)."""

    scheduler: str
    nodes: int
    started: bool


class Plan(NamedTuple):
    submit: list[str]  # a scheduler's name per allocation to submit now
    unserved: list[str]  # classes with jobs waiting that no scheduler can run
    waiting: dict[str, int]  # jobs waiting per scheduler


def plan(
    backlog: Mapping[str, int],
    offers: Sequence[Offer],
    open_: Iterable[OpenAllocation],
    limits: Limits,
    caps: Mapping[str, int] | None = None,
) -> Plan:
    """The allocations to submit now (see the module's docstring); ``caps``: open
    allocations per scheduler at most."""
    waiting: dict[str, int] = {}  # jobs waiting per scheduler
    unserved = []
    for hardware_class, count in sorted(backlog.items()):
        if count <= 0:
            continue
        need = Resources.from_hardware_class(hardware_class)
        fitting = [offer for offer in offers if offer.serves(need)]
        if not fitting:
            unserved.append(hardware_class)
            continue
        name = min(fitting, key=Offer.size).scheduler.name
        waiting[name] = waiting.get(name, 0) + count
    allocations = list(open_)
    queued = {offer.scheduler.name: 0 for offer in offers}
    held = dict(queued)  # open allocations per scheduler
    for allocation in allocations:
        held[allocation.scheduler] = held.get(allocation.scheduler, 0) + 1
        if not allocation.started:
            queued[allocation.scheduler] = queued.get(allocation.scheduler, 0) + 1
    in_queue = sum(queued.values())
    nodes = sum(allocation.nodes for allocation in allocations)
    opened = len(allocations)
    most = limits.max_allocations or math.inf
    submit: list[str] = []
    turn = True
    while turn:  # a round: each scheduler that may have one more gets one
        turn = False
        for offer in offers:
            name, size = offer.scheduler.name, offer.scheduler.nodes
            if (
                queued[name] < waiting.get(name, 0)
                and held[name] < (caps or {}).get(name, math.inf)
                and in_queue < limits.max_queued
                and nodes + size <= limits.max_nodes
                and opened < most
            ):
                submit.append(name)
                queued[name] += 1
                held[name] += 1
                in_queue, nodes, opened = in_queue + 1, nodes + size, opened + 1
                turn = True
    return Plan(submit, unserved, waiting)


class Backoff:
    """Waits after failed submissions: ``backoff_s``, doubled per failure in a row."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.failures = 0
        self.next_at = -math.inf

    def ready(self, now: float) -> bool:
        return now >= self.next_at

    def failed(self, now: float) -> float:
        """Note a failure at ``now``; how long to wait before the next submission."""
        wait = min(self.limits.backoff_s * 2.0**self.failures, self.limits.max_backoff_s)
        self.failures += 1
        self.next_at = now + wait
        return wait

    def succeeded(self) -> None:
        self.failures, self.next_at = 0, -math.inf
