"""A NATS cluster for jobstream: the nodes' configurations, and a local one on loopback.

Every node of a cluster gets a configuration of its own (``STATE_DIR/run/node-<i>.conf``,
mode 0600: it holds the route password) that names the others as routes and includes
the same users (``run/authorization.conf``, :mod:`jobstream.host.users`), so
``jobstream users add --state-dir STATE_DIR`` manages the cluster's identities as it
does an embedded server's. The route password makes the nodes refuse a stranger posing
as one of them. Written once: a second ``cluster config`` keeps the route password, so
a node's copy stays valid.

``jobstream dev-cluster`` runs the nodes of such a directory on this machine
(:class:`LocalCluster`), for development and the chaos tests: three nats-servers on
loopback, each with its store, supervised (a node that dies is started again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
import nats
from nats.js.errors import APIError, ServiceUnavailableError

from jobstream.config import DEFAULT_SYNC
from jobstream.errors import ConfigError, ServerError
from jobstream.host import credentials, statedir, users
from jobstream.host.credentials import write_private
from jobstream.host.embedded import (
    die_with_parent,
    server_binary,
    server_environment,
    stop_process,
)
from jobstream.streams.urls import servers, with_user

log = logging.getLogger(__name__)
CLUSTER_FILE = "cluster.json"  # in STATE_DIR/run: the nodes and the route login
CLUSTER_NAME = "jobstream"
ROUTE_USER = "route"
DEV_CLUSTER = "dev-cluster"  # the kind of owner, in the state directory's record
READY_TIMEOUT_S = 30.0
RESTART_PAUSE_S = 1.0


class Node(msgspec.Struct, frozen=True):
    """One nats-server of the cluster: how it is named and where it listens."""

    name: str
    host: str  # where the others and the clients reach it
    client_port: int
    route_port: int
    monitor_port: int

    def url(self) -> str:
        return f"nats://{self.host}:{self.client_port}"


class ClusterPlan(msgspec.Struct, frozen=True):
    """The nodes, where they listen and store, and the route password (kept secret)."""

    nodes: list[Node]
    listen: str  # the address every node binds: 127.0.0.1 locally, 0.0.0.0 on a site
    store: str
    route_password: str
    sync: str = DEFAULT_SYNC

    def url(self) -> str:
        """The cluster's URL list, as clients give it (``--nats-url``)."""
        return ",".join(node.url() for node in self.nodes)


def plan(
    hosts: Sequence[str],
    *,
    store: Path,
    listen: str = "0.0.0.0",
    ports: tuple[int, int, int] = (4222, 6222, 8222),
    sync: str = DEFAULT_SYNC,
) -> ClusterPlan:
    """A cluster of one node per host, every node on the same ports (``ports``: clients,
    routes, monitoring)."""
    if len(hosts) < 3:
        raise ConfigError(f"a cluster needs 3 or more nodes (got {len(hosts)}): R3 needs a quorum")
    if len(set(hosts)) != len(hosts):
        raise ConfigError("--host: each node needs a host of its own")
    nodes = [Node(f"node-{i}", host, *ports) for i, host in enumerate(hosts, 1)]
    return ClusterPlan(nodes, listen, str(store), secrets.token_urlsafe(32), sync)


def configure(
    state_dir: Path,
    hosts: Sequence[str],
    *,
    store: Path | None = None,
    listen: str = "0.0.0.0",
    ports: tuple[int, int, int] = (4222, 6222, 8222),
    sync: str = DEFAULT_SYNC,
) -> ClusterPlan:
    """Plan a cluster of one node per host and write its files into ``state_dir``
    (stores under ``store``, default STATE_DIR/nats); what was written."""
    if len(set(ports)) != len(ports) or not all(0 < port < 65536 for port in ports):
        raise ConfigError(f"ports {ports}: three different ports between 1 and 65535")
    store = store or (state_dir / "nats").resolve()
    return write(state_dir, plan(hosts, store=store, listen=listen, ports=ports, sync=sync))


def local_plan(size: int, store: Path, sync: str = DEFAULT_SYNC) -> ClusterPlan:
    """``size`` nodes on loopback, each on free ports of its own."""
    if size < 3:
        raise ConfigError(f"a cluster needs 3 or more nodes (got {size}): R3 needs a quorum")
    ports = free_ports(3 * size)
    nodes = [Node(f"node-{i + 1}", "127.0.0.1", *ports[3 * i : 3 * i + 3]) for i in range(size)]
    return ClusterPlan(nodes, "127.0.0.1", str(store), secrets.token_urlsafe(32), sync)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (held open together, so all differ)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def node_config(cluster: ClusterPlan, node: Node, run: Path) -> str:
    """nats-server's configuration of one node: its ports, JetStream store, routes to
    the others (with the route login), and the users of the directory."""
    route_login = f"{ROUTE_USER}:{cluster.route_password}"
    routes = [
        f"nats-route://{route_login}@{other.host}:{other.route_port}"
        for other in cluster.nodes
        if other != node
    ]
    fields = {
        "server_name": node.name,
        "listen": f"{cluster.listen}:{node.client_port}",
        "http": f"{cluster.listen}:{node.monitor_port}",
        "pid_file": str(run / f"{node.name}.pid"),
    }
    jetstream = {
        "store_dir": str(Path(cluster.store) / node.name),
        "sync_interval": cluster.sync,
    }
    route_block = {
        "name": CLUSTER_NAME,
        "listen": f"{cluster.listen}:{node.route_port}",
        "authorization": {"user": ROUTE_USER, "password": cluster.route_password},
        "routes": routes,
    }
    return (
        "".join(f"{key}: {json.dumps(value)}\n" for key, value in fields.items())
        + f"include {json.dumps(users.AUTHORIZATION_FILE)}\n"
        + f"jetstream: {json.dumps(jetstream)}\n"
        + f"cluster: {json.dumps(route_block)}\n"
    )


def config_path(state_dir: Path, node: Node) -> Path:
    return state_dir / "run" / f"{node.name}.conf"


def write(state_dir: Path, cluster: ClusterPlan) -> ClusterPlan:
    """Write the cluster's files into ``state_dir`` (the admin login, the users, a
    configuration per node); a directory that has a cluster already keeps its route
    password. What was written."""
    run = state_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    kept = load(state_dir)
    if kept is not None:
        cluster = msgspec.structs.replace(cluster, route_password=kept.route_password)
    users.write_authorization(state_dir, credentials.ensure(state_dir))
    for node in cluster.nodes:
        write_private(config_path(state_dir, node), node_config(cluster, node, run.resolve()))
    write_private(run / CLUSTER_FILE, msgspec.json.encode(cluster).decode())
    return cluster


def load(state_dir: Path) -> ClusterPlan | None:
    """The cluster a directory describes, if any."""
    path = state_dir / "run" / CLUSTER_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=ClusterPlan)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: not a cluster description ({exc})") from None


@dataclass
class LocalNode:
    node: Node
    config: Path
    process: asyncio.subprocess.Process | None = None


class LocalCluster:
    """The nodes of a state directory's cluster as processes on this machine."""

    def __init__(self, state_dir: Path, cluster: ClusterPlan) -> None:
        self.state_dir = state_dir
        self.cluster = cluster
        self.nodes = [LocalNode(node, config_path(state_dir, node)) for node in cluster.nodes]
        self.stopping = False
        self.dial_url = with_user(cluster.url(), *credentials.ensure(state_dir))

    async def start(self) -> None:
        """Start every node; return once JetStream answers (a meta leader is elected)."""
        for node in self.nodes:
            await self.start_node(node)
        await wait_for_jetstream(self.dial_url)

    async def start_node(self, node: LocalNode) -> None:
        log_path = self.state_dir / f"{node.node.name}.log"
        with open(log_path, "ab") as node_log:  # noqa: ASYNC230 - opening a log file is instant
            node.process = await asyncio.create_subprocess_exec(
                str(server_binary()),
                "-c",
                str(node.config),
                stdout=node_log,
                stderr=subprocess.STDOUT,
                env=server_environment(os.environ),
                preexec_fn=die_with_parent,
            )

    def kill(self, name: str) -> None:
        """kill -9 one node (chaos)."""
        found = self.node(name)
        assert found.process is not None
        found.process.kill()

    def node(self, name: str) -> LocalNode:
        return next(n for n in self.nodes if n.node.name == name)

    async def supervise(self) -> None:
        """Start a node that dies again, on its ports and store, until stopped."""
        async with anyio.create_task_group() as tg:
            for node in self.nodes:
                tg.start_soon(self._keep_up, node)

    async def _keep_up(self, node: LocalNode) -> None:
        while True:
            assert node.process is not None
            code = await node.process.wait()
            if self.stopping:
                return
            log.error("%s exited (%s); starting it again", node.node.name, code)
            await anyio.sleep(RESTART_PAUSE_S)
            await self.start_node(node)

    async def stop(self) -> None:
        self.stopping = True
        with anyio.CancelScope(shield=True):
            for node in self.nodes:
                if node.process is not None:
                    await stop_process(node.process)


@contextlib.asynccontextmanager
async def local_cluster(
    state_dir: Path, size: int = 3, sync: str = DEFAULT_SYNC
) -> AsyncIterator[LocalCluster]:
    """The state directory's local cluster (made on first use: ``size`` nodes on free
    loopback ports), running for the time of the block; the directory records it, so
    commands given ``--state-dir`` find it."""
    with statedir.owned(state_dir):
        cluster = load(state_dir) or write(
            state_dir, local_plan(size, (state_dir / "nats").resolve(), sync)
        )
        running = LocalCluster(state_dir, cluster)
        try:
            await running.start()
            statedir.record(state_dir, cluster.url(), DEV_CLUSTER)
            yield running
        finally:
            await running.stop()
            statedir.forget(state_dir)


async def wait_for_jetstream(url: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until JetStream answers through ``url`` (a cluster's does once its nodes have
    elected a meta leader); ServerError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    why = "no answer"
    while time.monotonic() < deadline:
        try:
            nc = await nats.connect(
                servers(url), connect_timeout=2, allow_reconnect=False, error_cb=_quiet
            )
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            why = str(exc) or type(exc).__name__
        else:
            try:
                await nc.jetstream(timeout=2).account_info()
                return
            except (TimeoutError, ServiceUnavailableError, APIError, nats.errors.Error) as exc:
                why = str(exc) or type(exc).__name__
            finally:
                await nc.close()
        await anyio.sleep(0.2)
    raise ServerError(f"the cluster's JetStream did not answer in {timeout_s:.0f} s ({why})")


async def _quiet(exc: Exception) -> None:
    """nats-py's connection errors while the nodes come up: the loop above reports."""
