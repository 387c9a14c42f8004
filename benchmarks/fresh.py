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

from benchmarks.results import Measure

ROOT = Path(__file__).resolve().parent.parent


def run_fresh(name: str, options: list[str]) -> list[Measure]:
    """``python -m benchmarks NAME OPTIONS`` once the disk has caught up (``sync``)."""
    os.sync()
    with tempfile.TemporaryDirectory(prefix="jobstream-bench-run-") as tmp:
        out = Path(tmp) / "measures.json"
        command = [sys.executable, "-m", "benchmarks", name, *options, "--measures-to", str(out)]
        subprocess.run(command, cwd=ROOT, check=True)
        return [Measure(**m) for m in json.loads(out.read_text())]


def write_measures(measures: list[Measure], path: Path) -> None:
    """The child's side of :func:`run_fresh`."""
    path.write_text(json.dumps([dataclasses.asdict(m) for m in measures]))
