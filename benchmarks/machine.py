"""Describe the machine a benchmark ran on, for the results table."""

from __future__ import annotations

import os
import platform
import time

LOOP = 5_000_000


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}; "
        f"Python speed {python_speed():.0f} M loop steps/s"
    )


def python_speed() -> float:
    """Millions of steps/s of a plain Python loop (best of 3): this VM's speed drifts by
    up to 2x between days while its spawn rate hardly moves, and every system here
    (jobstream, Parsl, Dask, HyperQueue's client) moves with it."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        total = 0
        for i in range(LOOP):
            total += i
        best = min(best, time.perf_counter() - began)
    return LOOP / best / 1e6
