"""``python -m benchmarks <name> [--quick] [--write]``: jobstream next to its peers.

Names: ``noop`` and ``dag`` (jobstream, HyperQueue, Dask, Parsl on the same jobs),
``submit`` (1,000,000 jobs durable, scheduler memory), ``replay`` (read-model rebuild),
``spawn`` (the machine's process-spawn ceiling), ``projection`` (projector throughput and
lag), and ``all`` (spawn, noop, dag, submit, replay). ``--write`` updates
docs/benchmarks.md, docs/benchmarks/results.json and the plot.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import compare, projection, replay, report, spawn, submit, targets
from benchmarks.machine import describe
from benchmarks.results import Measure
from benchmarks.workload import dag, noop

SUITE = ("spawn", "noop", "dag", "submit", "replay")
PEERS = ("hq", "dask", "parsl")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=[*SUITE, "projection", "all"])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI (< 2 min)")
    parser.add_argument("--jobs", type=int, help="jobs for noop/dag/submit")
    parser.add_argument("--events", type=int, help="events for replay/projection")
    parser.add_argument(
        "--peers", default=",".join(PEERS), help="peers to compare with (comma-separated; '' none)"
    )
    parser.add_argument(
        "--peer-python",
        default=sys.executable,
        help="Python that has the peers installed (default: this one)",
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks*")
    parser.add_argument("--measures-to", type=Path, help=argparse.SUPPRESS)  # see _isolated
    args = parser.parse_args()
    if args.name == "projection":
        return projection.main(quick=args.quick, events=args.events)

    peers = [p for p in args.peers.split(",") if p]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"--peers: unknown {', '.join(unknown)} (choose from {', '.join(PEERS)})")
    size = args.jobs or (1_000 if args.quick else 10_000)
    runs: dict[str, Callable[[], list[Measure]]] = {
        "spawn": lambda: spawn.run(args.quick),
        "noop": lambda: compare.run(noop(size), peers, args.peer_python),
        "dag": lambda: compare.run(dag(size), peers, args.peer_python),
        "submit": lambda: submit.run(args.quick, args.jobs),
        "replay": lambda: replay.run(args.quick, args.events),
    }
    if args.measures_to:
        measures = runs[args.name]()
        args.measures_to.write_text(json.dumps([dataclasses.asdict(m) for m in measures]))
        return 0
    machine = describe()
    results: list[Measure] = []
    for name in SUITE if args.name == "all" else (args.name,):
        print(f"{name}...", file=sys.stderr, flush=True)
        results += _isolated(name, _forwarded(args)) if args.name == "all" else runs[name]()
    print(f"machine: {machine}\n")
    ceiling = report.spawn_ceiling(results)
    print(report.table(results, ceiling))
    judged = targets.verdicts(results, ceiling)
    if judged:
        print("\nissue 6's targets, judged on this run:\n" + "\n".join(judged))
    if args.write:
        for path in report.write(results, machine):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _forwarded(args: argparse.Namespace) -> list[str]:
    """The options of this run that a benchmark of the suite takes."""
    options = ["--peers", args.peers, "--peer-python", args.peer_python]
    options += ["--quick"] if args.quick else []
    options += ["--jobs", str(args.jobs)] if args.jobs else []
    return options + (["--events", str(args.events)] if args.events else [])


def _isolated(name: str, options: list[str]) -> list[Measure]:
    """One benchmark of the suite in a fresh interpreter, once the disk has caught up.

    In the suite's own process, ``replay`` right after ``submit`` (its million-event log
    still being written back, the heap grown) read 100,600 events/s where it read
    110,000-118,000 alone; each benchmark should measure itself, not what the one
    before it left behind.
    """
    os.sync()
    with tempfile.TemporaryDirectory(prefix="jobstream-suite-") as tmp:
        out = Path(tmp) / "measures.json"
        command = [sys.executable, "-m", "benchmarks", name, *options, "--measures-to", str(out)]
        subprocess.run(command, check=True)
        return [Measure(**m) for m in json.loads(out.read_text())]


if __name__ == "__main__":
    sys.exit(main())
