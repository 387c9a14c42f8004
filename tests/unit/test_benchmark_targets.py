"""The issue-6 verdicts printed after a benchmark run: judged on the run's own measures."""

from __future__ import annotations

from benchmarks.results import Measure
from benchmarks.targets import verdicts


def measure(
    benchmark: str,
    system: str,
    count: int,
    rate: float,
    unit: str = "jobs/s",
    peak_rss_mib: float | None = None,
) -> Measure:
    return Measure(benchmark, system, count, count / rate, rate, unit, peak_rss_mib)


def test_a_full_run_is_judged_target_by_target() -> None:
    results = [
        measure("noop", "jobstream", 10_000, 781.0),
        measure("noop", "hyperqueue", 10_000, 345.0),
        measure("noop", "parsl", 10_000, 800.0),
        measure("dag", "jobstream", 10_000, 700.0),
        measure("submit", "jobstream", 1_000_000, 17_989.0),
        measure("submit", "jobstream scheduler", 1_000_000, 6_529.0, peak_rss_mib=1100.0),
        measure("replay", "jobstream", 1_000_000, 120_000.0, unit="events/s"),
    ]
    assert verdicts(results, ceiling=2_225.0) == [
        "NOT met  noop >= 1,000 jobs/s: 781 jobs/s",
        "met      noop >= 2x HyperQueue: 2.26x",
        "NOT met  noop ahead of parsl: 800 jobs/s",
        "NOT met  stretch: noop >= 50% of the spawn ceiling: 35%",
        "met      dag >= 80% of noop: 90%",
        "met      submit 1,000,000 jobs durable in < 60 s: 55.6 s for 1,000,000 jobs",
        "NOT met  scheduler memory < 1 GiB for them: 1,100 MiB",
        "met      replay >= 100,000 events/s: 120,000 events/s",
    ]


def test_nothing_is_judged_below_the_issues_sizes() -> None:
    results = [
        measure("noop", "jobstream", 1_000, 1_500.0),
        measure("noop", "hyperqueue", 1_000, 500.0),
        measure("submit", "jobstream", 20_000, 18_000.0),
        measure("replay", "jobstream", 50_000, 150_000.0, unit="events/s"),
    ]
    assert verdicts(results, ceiling=None) == [
        "n/a      noop >= 1,000 jobs/s: 1,500 jobs/s",
        "n/a      noop >= 2x HyperQueue: 3.00x",  # start-up would decide it
        "n/a      submit 1,000,000 jobs durable in < 60 s: 1.1 s for 20,000 jobs",
        "n/a      replay >= 100,000 events/s: 150,000 events/s",
    ]
