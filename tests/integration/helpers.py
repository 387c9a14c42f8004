"""Building blocks for integration tests: workflows in code, event histories by job."""

from __future__ import annotations

import socket
from collections import defaultdict

from jobstream.events import AnyEvent, JobEvent
from jobstream.model import JobDef, Resources, WorkflowDef
from jobstream.streams.connection import Connection
from jobstream.streams.reader import read_until_caught_up
from jobstream.streams.subjects import workflow_filter

SMALL = Resources(num_cpus=1, memory_mib=64, runtime_s=60)


def workflow(*commands: tuple[str, str, tuple[int, ...]], name: str = "t") -> WorkflowDef:
    """Jobs as (name, command, depends_on) triples, indexed in order."""
    return WorkflowDef(
        name=name,
        jobs=tuple(
            JobDef(index=i, name=n, command=c, depends_on=d, resources=SMALL)
            for i, (n, c, d) in enumerate(commands)
        ),
    )


async def histories(conn: Connection, wf: str) -> dict[int, list[AnyEvent]]:
    """Every job's events, in order, read from the log."""
    found: dict[int, list[AnyEvent]] = defaultdict(list)
    async for stored in read_until_caught_up(conn.js, workflow_filter(wf)):
        if isinstance(stored.event, JobEvent):
            found[stored.event.job].append(stored.event)
    return dict(found)


def types(events: list[AnyEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
