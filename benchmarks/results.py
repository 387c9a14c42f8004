"""One measured number with what it is of, shared by every benchmark and the report."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Measure:
    """``rate`` in ``unit`` (jobs/s, events/s, proc/s) for ``count`` items in ``seconds``."""

    benchmark: str
    system: str
    count: int
    seconds: float
    rate: float
    unit: str = "jobs/s"
    peak_rss_mib: float | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def failed(cls, benchmark: str, system: str, count: int, why: str) -> Measure:
        """A run that gave no number: reported with its reason, never fatal to the rest."""
        return cls(benchmark, system, count, float("nan"), float("nan"), note=why)
