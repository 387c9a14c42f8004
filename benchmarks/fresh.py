"""Run one benchmark in a fresh interpreter and read back its measures.

In one long-lived process, ``replay`` right after ``submit`` (its million-event log still
being written back, the heap grown) read 100,600 events/s where it read 110,000-118,000
alone: each benchmark should measure itself, not what the one before it left behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import ROOT
from benchmarks.results import Measure

RUN_TIMEOUT_S = 3600.0


def run_fresh(name: str, options: list[str], count: int = 0) -> list[Measure]:
    """``python -m benchmarks NAME OPTIONS`` once the disk has caught up (``sync``); a run
    that fails or hangs becomes one failed measure (of ``count`` items), not the end of
    the suite. Its own output (progress, errors) goes to this process's stderr."""
    os.sync()
    with tempfile.TemporaryDirectory(prefix="jobstream-bench-run-") as tmp:
        out = Path(tmp) / "measures.json"
        command = [sys.executable, "-m", "benchmarks", name, *options, "--measures-to", str(out)]
        try:
            done = subprocess.run(command, cwd=ROOT, timeout=RUN_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return [Measure.failed(name, "jobstream", count, f"no result in {RUN_TIMEOUT_S:.0f} s")]
        if done.returncode != 0 or not out.exists():
            why = f"exited with {done.returncode} (its error is in the output above)"
            return [Measure.failed(name, "jobstream", count, why)]
        return [Measure(**m) for m in json.loads(out.read_text())]


def write_measures(measures: list[Measure], path: Path) -> None:
    """The child's side of :func:`run_fresh`."""
    path.write_text(json.dumps([dataclasses.asdict(m) for m in measures]))
