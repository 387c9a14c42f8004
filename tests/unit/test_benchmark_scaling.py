"""The linearity verdicts of ``python -m benchmarks scaling``: marginal cost per size step."""

from __future__ import annotations

from benchmarks.results import Measure
from benchmarks.scaling import table, verdicts


def point(benchmark: str, count: int, seconds: float, cpu_s: float | None = None) -> Measure:
    extra = {} if cpu_s is None else {"cpu_s": cpu_s}
    return Measure(benchmark, "jobstream", count, seconds, count / seconds, extra=extra)


def test_a_step_whose_added_items_cost_more_is_not_linear() -> None:
    results = [
        point("noop", 10_000, 10.0, cpu_s=11.0),
        point("noop", 2_500, 4.0, cpu_s=3.5),  # out of order: sorted by size
        point("noop", 40_000, 70.0, cpu_s=41.0),
    ]
    # time: 6 s for 7,500 more jobs (800 µs each), then 60 s for 30,000 (2,000 µs each);
    # CPU: 1,000 µs per added job both times, though 1,400 µs per job at 2,500.
    assert verdicts(results) == [
        "NOT linear  noop (jobstream), time per added item (2,500 -> 10,000 -> "
        "40,000): 800 µs, 2,000 µs, x2.50",
        "linear      noop (jobstream), CPU per added item (2,500 -> 10,000 -> "
        "40,000): 1,000 µs, 1,000 µs, x1.00",
    ]


def test_fixed_costs_do_not_hide_growth_and_one_step_is_not_judged() -> None:
    # 2 s fixed + 10 µs per event: per item 42, 18, 12 µs — dearer at small sizes only.
    linear = [point("replay", n, 2.0 + n * 1e-5) for n in (62_500, 250_000, 1_000_000)]
    quick = [point("submit", n, n * 2e-5) for n in (5_000, 20_000)]
    judged = verdicts(linear + quick)
    assert judged[0].startswith("linear      replay (jobstream), time per added item")
    assert judged[0].endswith(": 10 µs, 10 µs, x1.00")
    assert judged[1].startswith("n/a         submit (jobstream), time per added item")


def test_a_failed_point_leaves_its_series_incomplete_with_its_reason_shown() -> None:
    failed = Measure.failed("dag", "jobstream", 40_000, "exited with 1")
    results = [point("dag", 10_000, 10.0), failed]
    assert verdicts(results) == ["incomplete  dag (jobstream): failed at 40,000"]
    assert "| dag | jobstream | 40,000 | — | — | — | — | — | exited with 1 |" in table(results)
