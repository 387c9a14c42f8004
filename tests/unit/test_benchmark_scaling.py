"""The linearity verdicts of ``python -m benchmarks scaling``: per size step, per cost."""

from __future__ import annotations

from benchmarks.results import Measure
from benchmarks.scaling import verdicts


def point(benchmark: str, count: int, seconds: float, cpu_s: float | None = None) -> Measure:
    extra = {} if cpu_s is None else {"cpu_s": cpu_s}
    return Measure(benchmark, "jobstream", count, seconds, count / seconds, extra=extra)


def test_a_step_that_makes_items_dearer_beyond_the_slack_is_not_linear() -> None:
    results = [
        point("noop", 10_000, 10.0, cpu_s=15.0),
        point("noop", 2_500, 4.0, cpu_s=5.0),  # out of order: sorted by size
        point("noop", 40_000, 60.0, cpu_s=60.0),
        point("replay", 250_000, 2.0),
        point("replay", 1_000_000, 8.5),
    ]
    assert verdicts(results) == [
        "NOT linear  noop (jobstream), time per item, 2,500 to 40,000: x0.62, x1.50",
        "linear      noop (jobstream), CPU per job, 2,500 to 40,000: x0.75, x1.00",
        "linear      replay (jobstream), time per item, 250,000 to 1,000,000: x1.06",
    ]


def test_failed_points_and_single_sizes_are_not_judged() -> None:
    failed = Measure("dag", "jobstream", 40_000, float("nan"), float("nan"))
    assert verdicts([point("dag", 10_000, 10.0), failed]) == []
