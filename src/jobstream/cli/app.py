"""The ``jobstream`` command: one Typer app, one module per command group."""

from __future__ import annotations

from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Annotated

import typer

from jobstream.cli import (
    check,
    cluster,
    control,
    events,
    projections,
    run,
    server,
    status,
    submit,
    worker,
    workers,
)
from jobstream.cli.cluster import cluster_app
from jobstream.cli.common import DEBUG, GIVEN, out
from jobstream.cli.config import config_app
from jobstream.cli.slurm import slurm_app
from jobstream.cli.users import users_app

app = typer.Typer(
    name="jobstream",
    help="Event-sourced workflow engine for command-line job campaigns (NATS JetStream).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"jobstream {installed_version('jobstream')}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks and debug logs")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print version")
    ] = False,
    creds: Annotated[
        Path | None,
        typer.Option(
            "--creds",
            help="credentials file to log in with (a server's STATE_DIR/credentials.json, or "
            "one from `jobstream users add`; default: JOBSTREAM_CREDS, else the state "
            "directory's own)",
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(
            "--tls-ca",
            help="CA certificate that verifies a TLS server (default: JOBSTREAM_TLS_CA, the "
            "credentials file's, the state directory's tls/ca.pem, else the system's)",
        ),
    ] = None,
) -> None:
    """Run thousands to millions of jobs with dependencies; lose nothing; query everything."""
    DEBUG["on"] = debug
    GIVEN["creds"] = creds
    GIVEN["tls_ca"] = tls_ca


app.command()(run.run)
app.command()(check.check)
app.command()(submit.submit)
app.command()(server.server)
app.command()(worker.worker)
app.command()(workers.workers)
app.command()(status.status)
app.command()(status.watch)
app.command()(events.events)
app.command()(control.cancel)
app.command()(control.explain)
app.command()(control.restart)
app.command()(projections.sql)
app.command()(projections.projector)
app.command()(projections.rebuild)
app.command()(projections.archive)
app.add_typer(config_app, name="config")
app.add_typer(users_app, name="users")
app.add_typer(cluster_app, name="cluster")
app.add_typer(slurm_app, name="slurm")
app.command("dev-cluster")(cluster.dev_cluster)


def main() -> None:
    app()
