"""``python -m benchmarks.peers <peer> <noop|dag> [--jobs N] [--layers L] [--workers W]``.

Runs one peer on one workload and prints its ``PeerResult`` as one JSON line on stdout.
Everything else the peer prints (HyperQueue writes its server table to fd 1) goes to stderr.
On failure: exit 1 with a one-line error on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys

from benchmarks.peers import PEERS
from benchmarks.workload import dag, noop


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("workload", choices=["noop", "dag"])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--layers", type=int, default=10, help="dag stages")
    parser.add_argument("--workers", type=int, default=2, help="job slots (cores)")
    args = parser.parse_args()

    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # native code writes to fd 1 directly; keep stdout for the JSON line
    workload = dag(args.jobs, args.layers) if args.workload == "dag" else noop(args.jobs)
    try:
        peer = importlib.import_module(f"benchmarks.peers.{PEERS[args.peer][1]}")
        result = peer.run(workload, workers=args.workers)
    except Exception as error:
        message = " ".join(str(error).split())
        print(f"{args.peer}: {type(error).__name__}: {message}", file=sys.stderr)
        return 1
    print(json.dumps(dataclasses.asdict(result)), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
