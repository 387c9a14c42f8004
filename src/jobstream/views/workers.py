"""The workers that are up, as the read models know them."""

from __future__ import annotations

from jobstream.config import Settings
from jobstream.errors import JobstreamError
from jobstream.model import Resources
from jobstream.streams.connection import Connection
from jobstream.views.sql import run_sql

LIVE_WORKERS = (
    "SELECT num_cpus, memory_mib, num_gpus, 1 AS num_nodes, "
    "CAST(least(walltime_s, 1e9) AS BIGINT) AS runtime_s FROM workers WHERE stopped_at IS NULL"
)


async def live_capacities(conn: Connection, settings: Settings) -> list[Resources] | None:
    """The capacity of every worker that started and has not stopped; None when there
    are no read models to ask."""
    try:
        rows = (await run_sql(conn, settings, LIVE_WORKERS)).to_pylist()
    except JobstreamError:
        return None
    return [Resources(**row) for row in rows]
