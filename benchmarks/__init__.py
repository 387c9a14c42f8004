"""Benchmarks: ``python -m benchmarks <name> [--quick]``. Results go to docs/benchmarks.md."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: benchmarks run from it
