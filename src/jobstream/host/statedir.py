"""Who owns a state directory, and where its server listens.

One process at a time runs the embedded nats-server on a state directory's store: it
holds an exclusive lock (``owner.lock``, released by the kernel however the process
ends) and records its server in ``server.json`` (URL, pid, and whether it is a
``jobstream server`` or a ``jobstream run``), so that other commands started in the same
directory connect to it instead of starting a second server on the same store. Only the
recording process removes the record. The server's port is kept in ``nats.port``, so a
restarted server listens where its workers and clients look for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from jobstream.errors import ServerError

LOCK_FILE = "owner.lock"
SERVER_FILE = "server.json"
PORT_FILE = "nats.port"
SERVER, RUN = "server", "run"  # the kinds of owner


class ServerRecord(NamedTuple):
    """A live owner's server: where it listens, which process, which kind of command."""

    url: str
    pid: int
    kind: str

    def describe(self) -> str:
        return f"`jobstream {self.kind}` (pid {self.pid}, {self.url})"


def discover(state_dir: Path) -> ServerRecord | None:
    """The server recorded in this state directory, if its process is alive."""
    try:
        info = json.loads((state_dir / SERVER_FILE).read_text())
        record = ServerRecord(str(info["url"]), int(info["pid"]), str(info.get("kind", SERVER)))
        os.kill(record.pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def record(state_dir: Path, url: str, kind: str) -> None:
    """Record this process's server (written whole, then moved into place)."""
    path = state_dir / SERVER_FILE
    fresh = path.with_suffix(".tmp")
    fresh.write_text(json.dumps({"url": url, "pid": os.getpid(), "kind": kind}))
    os.replace(fresh, path)


def forget(state_dir: Path) -> None:
    """Remove the record, if it is this process's own."""
    found = discover(state_dir)
    if found is not None and found.pid == os.getpid():
        (state_dir / SERVER_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def owned(state_dir: Path) -> Iterator[None]:
    """Hold the state directory for this process; ServerError naming the owner when
    another process holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = discover(state_dir)
        who = holder.describe() if holder else "another jobstream process"
        raise ServerError(
            f"{state_dir} is in use by {who}: connect to it (`jobstream submit`, "
            "`--nats-url`), or use another --state-dir"
        ) from None
    try:
        yield
    finally:
        os.close(fd)


def kept_port(state_dir: Path) -> int | None:
    """The port this state directory's server listened on before, if any."""
    try:
        port = int((state_dir / PORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def keep_port(state_dir: Path, port: int) -> None:
    (state_dir / PORT_FILE).write_text(f"{port}\n")
