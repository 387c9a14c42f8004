"""``jobstream cluster config`` and ``jobstream dev-cluster``: a NATS cluster of 3 or
more nodes for jobstream (host/cluster.py; docs/operations.md, "A cluster deployment")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer

from jobstream.cli.common import (
    Json,
    StateDir,
    guarded,
    out,
    print_json,
    run_main,
    settings_from,
)
from jobstream.config import Settings
from jobstream.errors import ConfigError
from jobstream.host import cluster
from jobstream.host.credentials import CREDENTIALS_FILE
from jobstream.host.services import stoppable

cluster_app = typer.Typer(help="NATS cluster nodes for jobstream.", no_args_is_help=True)


@cluster_app.command("config")
@guarded
def config(
    host: Annotated[
        list[str],
        typer.Option("--host", help="each node's host name or address, as the others reach it"),
    ],
    store: Annotated[
        Path | None,
        typer.Option(help="where each node keeps its JetStream store (STORE/node-<i>)"),
    ] = None,
    listen: Annotated[str, typer.Option(help="the address every node binds")] = "0.0.0.0",
    client_port: Annotated[int, typer.Option(help="clients' port, on every node")] = 4222,
    route_port: Annotated[int, typer.Option(help="the nodes' port among themselves")] = 6222,
    monitor_port: Annotated[int, typer.Option(help="HTTP monitoring (/healthz)")] = 8222,
    nodes: Annotated[
        int | None, typer.Option(help="how many nodes (as many as --host; a check)")
    ] = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Write a configuration per node (STATE_DIR/run/node-<i>.conf), the admin login
    (STATE_DIR/credentials.json) and the users' file they share.

    Copy STATE_DIR to every node and start `nats-server -c STATE_DIR/run/node-<i>.conf`
    there; `jobstream users add --state-dir STATE_DIR` adds identities (then send the
    nodes SIGHUP, or copy the directory again).
    """
    if nodes is not None and nodes != len(host):
        raise ConfigError(f"--nodes {nodes} but {len(host)} --host given: one --host per node")
    settings = settings_from(state_dir=state_dir)
    written = cluster.configure(
        settings.state_dir,
        host,
        store=store,
        listen=listen,
        ports=(client_port, route_port, monitor_port),
        sync=settings.sync,
    )
    _report(settings, written, json_output, running=False)


@guarded
def dev_cluster(
    nodes: Annotated[int, typer.Option(help="how many nats-servers (3 or more)")] = 3,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Run a NATS cluster on this machine (loopback; for development and tests): 3
    nats-servers with JetStream, routes and the users of STATE_DIR, until stopped.

    Other commands reach it with --state-dir STATE_DIR, or --nats-url (printed) and
    --creds STATE_DIR/credentials.json; streams made with --replicas 3 (or
    JOBSTREAM_REPLICAS=3) survive the loss of a node.
    """
    settings = settings_from(state_dir=state_dir)
    run_main(_dev_cluster, settings, nodes, json_output)


async def _dev_cluster(settings: Settings, nodes: int, json_output: bool) -> None:
    async with (
        stoppable(),
        cluster.local_cluster(settings.state_dir, nodes, settings.sync) as running,
        anyio.create_task_group() as tg,
    ):
        _report(settings, running.cluster, json_output, running=True)
        tg.start_soon(running.supervise)


def _report(
    settings: Settings, planned: cluster.ClusterPlan, json_output: bool, running: bool
) -> None:
    login = (settings.state_dir / CREDENTIALS_FILE).resolve()
    configs = [str(cluster.config_path(settings.state_dir, node)) for node in planned.nodes]
    if json_output:
        print_json({"url": planned.url(), "credentials": str(login), "configs": configs})
        return
    verb = "running" if running else "written"
    out.print(f"cluster of {len(planned.nodes)} nodes {verb}: {planned.url()}")
    out.print(f"  node configurations: {', '.join(configs)}")
    out.print(f"  admin login (0600): {login}")
    out.print(
        f"  servers (one active, the others standby): jobstream --creds {login} server "
        f"--nats-url {planned.url()} --replicas 3 --state-dir <a directory of its own>"
    )
    out.print(
        f"  workers: jobstream users add NAME --role compute --state-dir {settings.state_dir}, "
        f"then jobstream --creds <its file> worker --nats-url {planned.url()}"
    )
