"""``python -m benchmarks.scheduler_only URL``: a bare scheduler process (no projector), so
the ``submit`` benchmark can measure the memory of the scheduler alone."""

from __future__ import annotations

import sys

import anyio

from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import open_connection


async def serve(url: str) -> None:
    async with open_connection(url) as conn:
        await Scheduler(conn, lease_s=30.0).run()


if __name__ == "__main__":
    anyio.run(serve, sys.argv[1])
