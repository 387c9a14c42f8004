"""``scaling``: jobstream alone at growing sizes, each four times the one before, to show
that its costs grow linearly with the number of jobs (issue 6).

Each point runs in a fresh interpreter (:mod:`benchmarks.fresh`), as the suite's
benchmarks do. Per point: the time per item; for ``noop`` and ``dag`` the CPU of
jobstream's own processes per job; for the scheduler its peak memory per held job.

Linearity is judged on marginal costs, what each item added between two sizes cost
(``(total(b) - total(a)) / (b - a)``): fixed costs (a first job's latency, an
interpreter's memory) make small sizes dear per item and would hide a cost that grows
faster than the jobs. With costs ``a + b·n`` every step's marginal cost is ``b``; a step
whose marginal cost is more than ``LINEAR_SLACK`` (this VM's run-to-run noise) times the
step before is reported as not linear. ``--quick`` has two sizes, one step: nothing to
compare it with, so it is shown but not judged.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable

from benchmarks.fresh import run_fresh
from benchmarks.report import replace_block, save_json
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
            results += run_fresh(benchmark, options_for(benchmark, size), count=size)
    return results


def time_per_item(m: Measure) -> float | None:
    return m.seconds / m.count * 1e6


def cpu_per_job(m: Measure) -> float | None:
    """CPU of jobstream's processes (server, nats-server, worker) from submission to
    completion: neither their start-up nor the jobs' own processes."""
    return m.extra["cpu_s"] / m.count * 1e6 if "cpu_s" in m.extra else None


def memory_per_job(m: Measure) -> float | None:
    """The scheduler's peak RSS per job it holds."""
    if m.system != "jobstream scheduler" or m.peak_rss_mib is None:
        return None
    return m.peak_rss_mib * 2**20 / m.count


# What is compared between sizes (the table's columns): (what, value per item, unit).
COSTS: list[tuple[str, Callable[[Measure], float | None], str]] = [
    ("time", time_per_item, "µs"),
    ("CPU", cpu_per_job, "µs"),
    ("peak RSS", memory_per_job, "B"),
]


def series(results: list[Measure]) -> dict[tuple[str, str], list[Measure]]:
    """The points of each (benchmark, system), smallest first (failed ones included)."""
    found: dict[tuple[str, str], list[Measure]] = {}
    for m in results:
        found.setdefault((m.benchmark, m.system), []).append(m)
    return {key: sorted(points, key=lambda m: m.count) for key, points in found.items()}


def table(results: list[Measure]) -> str:
    lines = [
        "| benchmark | system | items | seconds | rate | time per item | CPU per job "
        "| peak RSS per job | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for (benchmark, system), points in series(results).items():
        for m in points:
            if math.isnan(m.seconds):
                cells = ["—"] * (len(COSTS) + 2)
            else:
                cells = [f"{m.seconds:,.2f}", f"{m.rate:,.0f} {m.unit}"]
                for _, cost, unit in COSTS:
                    value = cost(m)
                    cells.append("—" if value is None else f"{value:,.0f} {unit}")
            note = m.note if math.isnan(m.seconds) else ""
            lines.append(f"| {benchmark} | {system} | {m.count:,} | {' | '.join(cells)} | {note} |")
    return "\n".join(lines)


def marginal_costs(points: list[Measure], cost: Callable[[Measure], float | None]) -> list[float]:
    """The cost of each item added between consecutive sizes (empty if not measured)."""
    per_item = [cost(m) for m in points]
    totals = [v * m.count for v, m in zip(per_item, points, strict=True) if v is not None]
    if len(totals) < len(points):
        return []
    return [
        (b - a) / (m.count - n.count)
        for (a, n), (b, m) in itertools.pairwise(zip(totals, points, strict=True))
    ]


def verdicts(results: list[Measure]) -> list[str]:
    """Per series and cost: the marginal cost of each size step, and whether it stayed
    flat (``linear``), grew (``NOT linear``), or cannot be judged (``n/a``)."""
    lines = []
    for (benchmark, system), points in series(results).items():
        failed = [m for m in points if math.isnan(m.seconds)]
        if failed:
            sizes = ", ".join(f"{m.count:,}" for m in failed)
            lines.append(f"{'incomplete':<11} {benchmark} ({system}): failed at {sizes}")
            continue
        span = " -> ".join(f"{m.count:,}" for m in points)
        for label, cost, unit in COSTS:
            steps = marginal_costs(points, cost)
            if not steps:
                continue
            shown = ", ".join(f"{s:,.0f} {unit}" for s in steps)
            growth = [b / a for a, b in itertools.pairwise(steps)]
            if not growth or min(steps) <= 0:
                verdict = "n/a"  # one step (--quick), or noise larger than a step's cost
            else:
                verdict = "linear" if max(growth) <= LINEAR_SLACK else "NOT linear"
            ratios = "".join(f", x{g:.2f}" for g in growth)
            lines.append(
                f"{verdict:<11} {benchmark} ({system}), {label} per added item "
                f"({span}): {shown}{ratios}"
            )
    return lines


def report(results: list[Measure], machine: str, write: bool) -> None:
    """Print the table and the verdicts; with ``write``, into docs/benchmarks.md too."""
    judged = "\n".join(verdicts(results))
    heading = f"Marginal cost of each size step (linear: each at most x{LINEAR_SLACK} the last)"
    block = f"Machine: {machine}\n\n{table(results)}\n\n{heading}:\n\n```text\n{judged}\n```\n"
    print(block)
    if write:
        for path in [save_json("scaling", results, machine), *replace_block("scaling", block)]:
            print(f"wrote {path}", file=sys.stderr)


def main(quick: bool, write: bool, machine: str) -> int:
    report(measure(quick), machine, write)
    return 0
