"""``scaling``: jobstream alone at three sizes, each four times the one before, to show
that its costs grow linearly with the number of jobs (issue 6).

Each point runs in a fresh interpreter (:mod:`benchmarks.fresh`), as the suite's
benchmarks do. Per point: the time per item (and, for ``noop`` and ``dag``, the CPU of
jobstream's processes per job; for the scheduler, its peak memory per job). Linear costs
keep those flat from one size to the next; fixed costs (a first job's latency, an
interpreter) make the smallest size the dearest per item. A step that makes an item
dearer by more than ``LINEAR_SLACK`` (the run-to-run noise of this VM) is reported as
not linear.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from collections.abc import Callable

from benchmarks.fresh import run_fresh
from benchmarks.report import DOCS, replace_block
from benchmarks.results import Measure

LINEAR_SLACK = 1.25
FULL = {
    "noop": (2_500, 10_000, 40_000),
    "dag": (2_500, 10_000, 40_000),
    "submit": (62_500, 250_000, 1_000_000),
    "replay": (62_500, 250_000, 1_000_000),
}
QUICK = {
    "noop": (250, 1_000),
    "dag": (250, 1_000),
    "submit": (5_000, 20_000),
    "replay": (12_500, 50_000),
}


def options_for(benchmark: str, size: int) -> list[str]:
    """Arguments of ``python -m benchmarks BENCHMARK`` for one point: jobstream alone."""
    return ["--peers", "", "--events" if benchmark == "replay" else "--jobs", str(size)]


def measure(quick: bool) -> list[Measure]:
    """Every point, smallest first per benchmark."""
    results: list[Measure] = []
    for benchmark, sizes in (QUICK if quick else FULL).items():
        for size in sizes:
            print(f"scaling: {benchmark} {size:,}...", file=sys.stderr, flush=True)
            results += run_fresh(benchmark, options_for(benchmark, size))
    return results


def time_per_item(m: Measure) -> float | None:
    return m.seconds / m.count * 1e6


def cpu_per_job(m: Measure) -> float | None:
    """CPU of jobstream's processes (server, nats-server, worker) from submission to
    completion: neither their start-up nor the jobs' own processes."""
    return m.extra["cpu_s"] / m.count * 1e6 if "cpu_s" in m.extra else None


def memory_per_job(m: Measure) -> float | None:
    """The scheduler's peak RSS per job it holds."""
    held = m.benchmark == "submit" and m.peak_rss_mib is not None
    return m.peak_rss_mib * 2**20 / m.count if held and m.peak_rss_mib else None


# What is compared between sizes: (label, value per item, unit).
COSTS: list[tuple[str, Callable[[Measure], float | None], str]] = [
    ("time per item", time_per_item, "µs"),
    ("CPU per job", cpu_per_job, "µs"),
    ("peak RSS per job", memory_per_job, "B"),
]


def series(results: list[Measure]) -> dict[tuple[str, str], list[Measure]]:
    """The points of each (benchmark, system), smallest first."""
    found: dict[tuple[str, str], list[Measure]] = {}
    for m in results:
        if m.system.startswith("jobstream") and not math.isnan(m.seconds):
            found.setdefault((m.benchmark, m.system), []).append(m)
    return {key: sorted(points, key=lambda m: m.count) for key, points in found.items()}


def table(results: list[Measure]) -> str:
    lines = [
        "| benchmark | system | items | seconds | rate | time per item | CPU per job "
        "| peak RSS per job |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (benchmark, system), points in series(results).items():
        for m in points:
            cells = []
            for _, cost, unit in COSTS:
                value = cost(m)
                cells.append("—" if value is None else f"{value:,.0f} {unit}")
            lines.append(
                f"| {benchmark} | {system} | {m.count:,} | {m.seconds:,.2f} "
                f"| {m.rate:,.0f} {m.unit} | {' | '.join(cells)} |"
            )
    return "\n".join(lines)


def verdicts(results: list[Measure]) -> list[str]:
    """Per series and cost: the worst growth of the cost per item over one size step."""
    lines = []
    for (benchmark, system), points in series(results).items():
        if len(points) < 2:
            continue
        for label, cost, _ in COSTS:
            values = [v for v in map(cost, points) if v]
            if len(values) < len(points):
                continue  # not measured for this series
            steps = [b / a for a, b in itertools.pairwise(values)]
            worst = max(steps)
            verdict = "linear" if worst <= LINEAR_SLACK else "NOT linear"
            span = f"{points[0].count:,} to {points[-1].count:,}"
            growth = ", ".join(f"x{s:.2f}" for s in steps)
            lines.append(f"{verdict:<11} {benchmark} ({system}), {label}, {span}: {growth}")
    return lines


def main(quick: bool, write: bool, machine: str) -> int:
    results = measure(quick)
    judged = verdicts(results)
    print(f"machine: {machine}\n\n{table(results)}\n")
    print(f"cost per item at each size step (linear: at most x{LINEAR_SLACK}):")
    print("\n".join(judged))
    if write:
        folder = DOCS / "benchmarks"
        folder.mkdir(parents=True, exist_ok=True)
        data = {"machine": machine, "results": [dataclasses.asdict(m) for m in results]}
        (folder / "scaling.json").write_text(json.dumps(data, indent=1) + "\n")
        lines = "\n".join(judged)
        block = (
            f"Machine: {machine}\n\n{table(results)}\n\n"
            f"Cost per item at each size step (linear: at most x{LINEAR_SLACK}):\n\n"
            f"```text\n{lines}\n```\n"
        )
        for path in [folder / "scaling.json", *replace_block("scaling", block)]:
            print(f"wrote {path}", file=sys.stderr)
    return 0
