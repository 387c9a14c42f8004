"""``jobstream server``: a long-running embedded nats-server, scheduler and projector."""

from __future__ import annotations

from typing import Annotated

import typer

from jobstream.cli.common import NatsUrl, StateDir, err, guarded, run_main, settings_from
from jobstream.host.services import serve


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
    nats_url: NatsUrl = None,
    state_dir: StateDir = None,
) -> None:
    """Run the embedded NATS server (unless --nats-url), scheduler and projector until stopped.

    Other commands started in the same directory find this server by itself.
    """
    settings = settings_from(nats_url=nats_url, state_dir=state_dir)
    run_main(serve, settings, port, err.print, projector)
