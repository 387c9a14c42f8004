"""What a worker has free, and exact reservations against it (pure bookkeeping).

A reservation takes CPUs, memory and specific GPU ids; the GPU ids become the job's
``CUDA_VISIBLE_DEVICES``. Nothing here awaits: the worker wraps it in a condition.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from jobstream.model import Resources


@dataclass(frozen=True)
class Reservation:
    """Resources held for one job."""

    need: Resources
    gpu_ids: tuple[int, ...]


@dataclass
class Capacity:
    """The worker's total resources and what running jobs hold of them."""

    total: Resources
    cpus_used: int = 0
    memory_used: int = 0
    free_gpus: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.free_gpus = list(range(self.total.num_gpus))

    def fits_now(self, need: Resources) -> bool:
        return (
            need.num_cpus <= self.total.num_cpus - self.cpus_used
            and need.memory_mib <= self.total.memory_mib - self.memory_used
            and need.num_gpus <= len(self.free_gpus)
        )

    def how_many_fit(self, need: Resources, limit: int) -> int:
        """How many more jobs of this class fit at once right now (at most ``limit``)."""
        free = (
            (self.total.num_cpus - self.cpus_used, need.num_cpus),
            (self.total.memory_mib - self.memory_used, need.memory_mib),
            (len(self.free_gpus), need.num_gpus),
        )
        return max(0, min([limit, *(have // want for have, want in free if want > 0)]))

    def how_many_fit_empty(self, need: Resources) -> int:
        """How many jobs of this class the empty worker runs at once (at least 1)."""
        return Capacity(self.total).how_many_fit(need, 1 << 20) or 1

    def reserve(self, need: Resources) -> Reservation:
        if not self.fits_now(need):
            raise ValueError(f"{need.hardware_class()} does not fit now")
        self.cpus_used += need.num_cpus
        self.memory_used += need.memory_mib
        gpu_ids = tuple(self.free_gpus[: need.num_gpus])
        del self.free_gpus[: need.num_gpus]
        return Reservation(need, gpu_ids)

    def release(self, reservation: Reservation) -> None:
        self.cpus_used -= reservation.need.num_cpus
        self.memory_used -= reservation.need.memory_mib
        self.free_gpus = sorted(self.free_gpus + list(reservation.gpu_ids))

    @property
    def idle(self) -> bool:
        return self.cpus_used == 0 and self.memory_used == 0


def machine_memory_mib() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


def local_capacity(
    cpus: int | None = None,
    memory_mib: int | None = None,
    gpus: int = 0,
    walltime_s: float = float("inf"),
) -> Resources:
    """A worker's capacity: this machine's CPUs and memory unless given."""
    return Resources(
        num_cpus=cpus or os.cpu_count() or 1,
        memory_mib=memory_mib or machine_memory_mib(),
        num_gpus=gpus,
        num_nodes=1,
        runtime_s=int(min(walltime_s, 10**9)),
    )
