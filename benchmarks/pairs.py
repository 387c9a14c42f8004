"""``python -m benchmarks.pairs NAME... --before DIR [--after DIR] [--rounds N]``: a change
measured side by side with the code before it.

Each of DIR is a checkout with its own virtual environment in ``DIR/.venv`` (where
``pip install -e '.[bench]'`` put that checkout's jobstream); ``--after`` may be the same
checkout run with other settings (``--after-env JOBSTREAM_SYNC=always``). Every round runs each
benchmark once per checkout, one right after the other, alternating which goes first, in
a fresh interpreter after ``sync`` (jobstream alone: no peers). A VM whose speed drifts
within the hour makes single runs of two versions incomparable; pairs taken minutes
apart are not. Prints every pair, its ratio (after / before) and the median ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import ROOT
from benchmarks.machine import describe

CHOICES = ("noop", "dag", "submit", "replay", "spawn")
RUN_TIMEOUT_S = 3600.0


def rate(
    checkout: Path, name: str, options: list[str], env: dict[str, str]
) -> tuple[float, str] | None:
    """The first measure's rate and note (e.g. CPU per process) of one run of ``name`` in
    ``checkout``; None if it failed."""
    python = checkout / ".venv" / "bin" / "python"
    os.sync()
    with tempfile.TemporaryDirectory(prefix="jobstream-pair-") as tmp:
        out = Path(tmp) / "measures.json"
        command = [str(python), "-m", "benchmarks", name, "--peers", "", *options]
        command += ["--measures-to", str(out)]
        try:
            subprocess.run(
                command, cwd=checkout, timeout=RUN_TIMEOUT_S, check=False, env=os.environ | env
            )
        except subprocess.TimeoutExpired:
            return None
        if not out.exists():
            return None
        measures = json.loads(out.read_text())
        if not measures or not measures[0].get("rate"):
            return None
        return float(measures[0]["rate"]), str(measures[0].get("note", ""))


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pairs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="+", choices=CHOICES)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the old code")
    parser.add_argument("--after", type=Path, default=ROOT, help="checkout of the new code")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, help="jobs for noop/dag/submit")
    parser.add_argument("--events", type=int, help="events for replay")
    for side in ("before", "after"):
        parser.add_argument(
            f"--{side}-env",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"environment of the {side} runs (repeatable)",
        )
    args = parser.parse_args()
    envs = {"before": _env(args.before_env), "after": _env(args.after_env)}
    options = ["--jobs", str(args.jobs)] if args.jobs else []
    options += ["--events", str(args.events)] if args.events else []
    print(f"machine: {describe()}")
    ratios: dict[str, list[float]] = {name: [] for name in args.names}
    for round_ in range(1, args.rounds + 1):
        for name in args.names:
            order = [("before", args.before), ("after", args.after)]
            if round_ % 2 == 0:
                order.reverse()
            found = {
                label: rate(path.resolve(), name, options, envs[label]) for label, path in order
            }
            before, after = found["before"], found["after"]
            ratio = after[0] / before[0] if before and after else None
            if ratio is not None:
                ratios[name].append(ratio)
            shown = f"x{ratio:.3f}" if ratio is not None else "failed"
            print(
                f"round {round_} {name}: before {before[0] if before else 0:,.0f}  "
                f"after {after[0] if after else 0:,.0f}  {shown}  ({order[0][0]} ran first)",
                flush=True,
            )
            for label in ("before", "after"):
                note = found[label]
                if note and note[1]:
                    print(f"    {label}: {note[1]}", flush=True)
    for name, found in ratios.items():
        if found:
            median = statistics.median(found)
            print(f"{name}: median after/before x{median:.3f} ({len(found)} pairs)")
    return 0


def _env(pairs: list[str]) -> dict[str, str]:
    found = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
    if len(found) != len(pairs):
        raise SystemExit(f"--*-env takes KEY=VALUE, not {pairs}")
    return found


if __name__ == "__main__":
    sys.exit(main())
