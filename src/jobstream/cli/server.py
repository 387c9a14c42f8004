"""``jobstream server``: a long-running embedded nats-server, scheduler and projector."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobstream.cli.common import NatsUrl, StateDir, err, guarded, run_main, settings_from
from jobstream.errors import ConfigError
from jobstream.host.services import serve
from jobstream.host.tls import ensure_made, given


@guarded
def server(
    port: Annotated[
        int | None,
        typer.Option(
            help="port of the embedded server [default: the one this state directory keeps, "
            "else a free one]"
        ),
    ] = None,
    projector: Annotated[
        bool,
        typer.Option(
            help="run the projector here too; --no-projector: it runs as `jobstream projector`"
        ),
    ] = True,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="clients must use TLS: a CA and server certificate are made once in "
            "STATE_DIR/tls (or give --tls-cert/--tls-key)",
        ),
    ] = False,
    tls_host: Annotated[
        list[str] | None,
        typer.Option(
            "--tls-host",
            help="another name or address the made certificate covers (repeatable; "
            "127.0.0.1, localhost and this host's name always are)",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="a site's own server certificate (PEM)")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="the key of --tls-cert (PEM)")
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(
            help="copies of the streams and buckets it makes, on a NATS cluster "
            "[default: the replicas setting, 1]"
        ),
    ] = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            help="schedulers sharing the workflows, spread over the servers (the same on "
            "every server) [default: the partitions setting, 1]"
        ),
    ] = None,
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
) -> None:
    """Run the embedded NATS server (unless --nats-url), scheduler, submitter service and
    projector until stopped.

    Other commands started in the same directory find this server by itself. Several
    servers may run on one NATS server or cluster: one scheduler and one projector are
    active (a KV lease), the others wait as standbys and take over within seconds.
    """
    settings = settings_from(
        nats_url=nats_url, state_dir=state_dir, replicas=replicas, partitions=partitions
    )
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    files = None
    if tls_cert is not None and tls_key is not None:
        files = given(tls_cert, tls_key)
    elif tls or tls_host:
        files = ensure_made(settings.state_dir, tls_host or [])
    if files is not None and settings.nats_url is not None:
        raise ConfigError("--tls is for the embedded server: a server at --nats-url has its own")
    run_main(serve, settings, port, err.print, projector, files)
