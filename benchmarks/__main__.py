"""``python -m benchmarks <name> [--quick] [--write]``: jobstream next to its peers.

Names: ``noop`` and ``dag`` (jobstream, HyperQueue, Dask, Parsl on the same jobs),
``submit`` (1,000,000 jobs durable, scheduler memory), ``replay`` (read-model rebuild),
``spawn`` (the machine's process-spawn ceiling), ``projection`` (projector throughput and
lag), ``restart`` (scheduler start-up against the history's length, with and without its
snapshot), ``archive`` (archiving finished workflows: the log before and after, rebuild
and scheduler start against it), ``scaling`` (jobstream alone at growing sizes: are its
costs linear?), and ``all`` (spawn, noop, dag, submit, replay, each in a fresh
interpreter). ``--write`` updates docs/benchmarks.md and what it shows (docs/benchmarks/).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    archive,
    compare,
    projection,
    replay,
    report,
    restart,
    scaling,
    spawn,
    submit,
    targets,
)
from benchmarks.fresh import run_fresh, write_measures
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
    parser.add_argument(
        "name", choices=[*SUITE, "projection", "scaling", "restart", "archive", "all"]
    )
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
    parser.add_argument("--measures-to", type=Path, help=argparse.SUPPRESS)  # see fresh.py
    args = parser.parse_args()
    if args.name == "projection":
        return projection.main(quick=args.quick, events=args.events)
    if args.name == "restart":
        lengths = [args.events] if args.events else [10_000 if args.quick else 1_000_000]
        return restart.main(lengths, args.jobs or 10_000)
    if args.name == "archive":
        return archive.main(
            args.events or (10_000 if args.quick else 1_000_000), args.jobs or 10_000
        )
    if args.name == "scaling":
        return scaling.main(quick=args.quick, write=args.write, machine=describe())

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
        if args.name not in runs:
            parser.error(f"--measures-to takes one of {', '.join(runs)}")
        write_measures(runs[args.name](), args.measures_to)
        return 0
    machine = describe()
    results: list[Measure] = []
    for name in SUITE if args.name == "all" else (args.name,):
        print(f"{name}...", file=sys.stderr, flush=True)
        results += run_fresh(name, _forwarded(args)) if args.name == "all" else runs[name]()
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


if __name__ == "__main__":
    sys.exit(main())
