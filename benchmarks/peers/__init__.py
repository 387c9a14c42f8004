"""Peer systems driven through the same workloads as jobstream, so their numbers compare.

Each peer module has ``run(workload, workers) -> PeerResult``; ``python -m benchmarks.peers``
runs one peer in its own process (see ``__main__``), so peers never share an interpreter.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from benchmarks.rss import PeakRss

# peer name -> (package it needs, module in this package that drives it)
PEERS: dict[str, tuple[str, str]] = {
    "hq": ("hyperqueue", "hq_peer"),
    "dask": ("distributed", "dask_peer"),
    "parsl": ("parsl", "parsl_peer"),
}

STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PeerResult:
    """One peer's run of one workload: wall time from first submission to last completion."""

    system: str
    jobs: int
    seconds: float
    peak_rss_mib: float
    note: str = ""
    cpu_s: float | None = None  # of the orchestrator processes, where measured


def available() -> dict[str, str | None]:
    """Per peer: None if its package is importable, else why not (without importing it)."""
    return {
        name: None if importlib.util.find_spec(package) else f"{package} not installed"
        for name, (package, _) in PEERS.items()
    }


def measure(submit_and_wait: Callable[[], None], others: Iterable[int] = ()) -> tuple[float, float]:
    """Wall seconds of ``submit_and_wait()`` and the peak RSS (MiB) meanwhile of this process,
    the ``others`` (orchestrator processes it did not start as children) and their descendants."""
    with PeakRss([os.getpid(), *others]) as rss:
        start = time.perf_counter()
        submit_and_wait()
        seconds = time.perf_counter() - start
    return seconds, rss.peak_mib
