"""The workloads every system runs: the same jobs, the same dependencies, the same command.

``noop`` is ``jobs`` independent jobs. ``dag`` is ``layers`` stages of fan-out/fan-in: a
hub job, then a wide layer that all depends on it, then the next hub depending on the whole
wide layer, and so on — every release of a wide layer waits on one job, so dependency
release is on the critical path ``layers`` times.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    """A named set of ``jobs`` shell commands with dependencies, identical for all systems."""

    name: str
    jobs: int
    layers: int = 1  # 1: independent jobs; more: fan-out/fan-in stages
    command: str = "true"

    def stages(self) -> list[tuple[str, int]]:
        """(hub name, wide-layer width) per stage; no hubs for a flat workload."""
        if self.layers <= 1:
            return [("", self.jobs)]
        width = self.jobs // self.layers - 1
        assert width > 0, "too few jobs for that many layers"
        return [(f"hub{k}", width) for k in range(self.layers)]

    def graph(self) -> list[tuple[str, list[str]]]:
        """Every job as (name, names it depends on), in a valid submission order."""
        jobs: list[tuple[str, list[str]]] = []
        previous: list[str] = []
        for k, (hub, width) in enumerate(self.stages()):
            if hub:
                jobs.append((hub, previous))
                previous = [hub]
            layer = [f"s{k}_{i}" for i in range(width)]
            jobs += [(name, previous) for name in layer]
            previous = layer
        return jobs


def noop(jobs: int = 10_000) -> Workload:
    return Workload("noop", jobs)


def dag(jobs: int = 10_000, layers: int = 10) -> Workload:
    return Workload("dag", jobs, layers)
