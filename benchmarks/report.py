"""Print results as a table, and write them where docs/benchmarks.md shows them.

``write`` stores ``docs/benchmarks/results.json``, draws ``docs/benchmarks/throughput.png``
(when matplotlib is installed) and replaces the block between the ``results`` markers in
docs/benchmarks.md, so one command regenerates everything the page shows.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from benchmarks import ROOT
from benchmarks.results import Measure
from benchmarks.targets import verdicts

DOCS = ROOT / "docs"


def _num(value: float, digits: int = 0) -> str:
    return "—" if math.isnan(value) else f"{value:,.{digits}f}"


def table(results: list[Measure], ceiling: float | None) -> str:
    """Markdown table: per benchmark, each system against jobstream (and the spawn limit)."""
    lines = [
        "| benchmark | system | items | seconds | rate | vs jobstream | of spawn ceiling "
        "| peak RSS (MiB) | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    ours = {m.benchmark: m.rate for m in results if m.system == "jobstream"}
    for m in results:
        versus = m.rate / ours[m.benchmark] if ours.get(m.benchmark) else math.nan
        share = m.rate / ceiling if ceiling and m.benchmark in ("noop", "dag") else math.nan
        lines.append(
            f"| {m.benchmark} | {m.system} | {m.count:,} | {_num(m.seconds, 2)} "
            f"| {_num(m.rate)} {m.unit} | {'—' if math.isnan(versus) else f'{versus:.2f}x'} | "
            f"{'—' if math.isnan(share) else f'{share:.0%}'} | "
            f"{'—' if m.peak_rss_mib is None else _num(m.peak_rss_mib)} | {m.note} |"
        )
    return "\n".join(lines)


def spawn_ceiling(results: list[Measure]) -> float | None:
    direct = [m.rate for m in results if m.benchmark == "spawn" and "direct" in m.system]
    return direct[0] if direct else None


def plot(results: list[Measure], ceiling: float | None, path: Path) -> bool:
    """Bar chart of jobs/s per system for noop and dag; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    benchmarks = [b for b in ("noop", "dag") if any(m.benchmark == b for m in results)]
    systems = list(dict.fromkeys(m.system for m in results if m.benchmark in benchmarks))
    figure, axes = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(1, len(systems))
    for i, system in enumerate(systems):
        rates = [
            next((m.rate for m in results if m.benchmark == b and m.system == system), 0.0)
            for b in benchmarks
        ]
        rates = [0.0 if math.isnan(r) else r for r in rates]
        axes.bar([k + i * width for k in range(len(benchmarks))], rates, width, label=system)
    if ceiling:
        axes.axhline(ceiling, color="grey", linestyle="--", label="spawn ceiling")
    axes.set_xticks([k + width * (len(systems) - 1) / 2 for k in range(len(benchmarks))])
    axes.set_xticklabels(benchmarks)
    axes.set_ylabel("jobs/s (higher is better)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return True


def save_json(name: str, results: list[Measure], machine: str) -> Path:
    """``docs/benchmarks/NAME.json``: the measures of a run and the machine they ran on."""
    path = DOCS / "benchmarks" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine, "results": [dataclasses.asdict(m) for m in results]}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def write(results: list[Measure], machine: str) -> list[Path]:
    """Store results, plot and the docs table; returns what was written."""
    folder = DOCS / "benchmarks"
    written = [save_json("results", results, machine)]
    ceiling = spawn_ceiling(results)
    image = folder / "throughput.png"
    block = f"Machine: {machine}\n\n{table(results, ceiling)}\n"
    judged = verdicts(results, ceiling)
    if judged:
        lines = "\n".join(judged)
        block += f"\nIssue 6's targets, judged on this run:\n\n```text\n{lines}\n```\n"
    if plot(results, ceiling, image):
        written.append(image)
        block += "\n![jobs/s per system](benchmarks/throughput.png)\n"
    return written + replace_block("results", block)


def replace_block(name: str, block: str) -> list[Path]:
    """Put ``block`` between the ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers
    of docs/benchmarks.md; the page, or nothing when it lacks them."""
    page = DOCS / "benchmarks.md"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = page.read_text()
    if start not in text or end not in text:
        return []
    head, rest = text.split(start, 1)
    page.write_text(f"{head}{start}\n{block}{end}{rest.split(end, 1)[1]}")
    return [page]
