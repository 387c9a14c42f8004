"""The process-spawn ceiling of this machine: how many ``true`` processes per second it can
start and reap with every core spawning, directly and through ``bash -c``.

No workflow engine can run short jobs faster than this; the other benchmarks report their
rates as a fraction of it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

from benchmarks.results import Measure


def _spawn_loop(argv: list[str], count: int) -> None:
    for _ in range(count):
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True
        )
        os.wait4(process.pid, 0)


def ceiling(argv: list[str], total: int, threads: int) -> float:
    """Processes per second with ``threads`` spawning loops sharing ``total`` spawns."""
    loops = [
        threading.Thread(target=_spawn_loop, args=(argv, total // threads)) for _ in range(threads)
    ]
    began = time.perf_counter()
    for loop in loops:
        loop.start()
    for loop in loops:
        loop.join()
    return (total // threads) * threads / (time.perf_counter() - began)


def run(quick: bool) -> list[Measure]:
    total = 1_000 if quick else 10_000
    cores = os.cpu_count() or 1
    direct = ceiling(["true"], total, cores)
    shell = ceiling(["bash", "-c", "true"], total, cores)
    return [
        Measure("spawn", "true (direct exec)", total, total / direct, rate=direct, unit="proc/s"),
        Measure("spawn", "bash -c true", total, total / shell, rate=shell, unit="proc/s"),
    ]
