"""Entry point: ``python -m benchmarks projection [--quick] [--events N]``."""

from __future__ import annotations

import argparse
import sys

from benchmarks import projection

BENCHMARKS = {"projection": projection.main}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI (< 2 min)")
    parser.add_argument("--events", type=int, default=None, help="events to project")
    args = parser.parse_args()
    return BENCHMARKS[args.name](quick=args.quick, events=args.events)


if __name__ == "__main__":
    sys.exit(main())
