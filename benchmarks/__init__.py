"""Benchmarks: ``python -m benchmarks <name> [--quick]``. Results go to docs/benchmarks.md."""
