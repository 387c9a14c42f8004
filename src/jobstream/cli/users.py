"""``jobstream users add|list|revoke``: who may log in to this state directory's server,
with which role (docs/security.md). Takes effect at once on a running server."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from jobstream.cli.common import Json, StateDir, guarded, out, print_json, settings_from
from jobstream.host import accounts

users_app = typer.Typer(help="Manage who may use this server, and as what.", no_args_is_help=True)


@users_app.command("add")
@guarded
def add(
    name: Annotated[str, typer.Argument(help="user name (lowercase letters, digits, - _)")],
    role: Annotated[str, typer.Option("--role", help="submitter, compute or admin")] = "submitter",
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="credentials file to write [STATE_DIR/creds/NAME.json]"),
    ] = None,
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Add a user and write its credentials file (mode 0600) to hand out.

    Whoever has the file logs in with `jobstream --creds FILE …`; it holds the server's
    URL and, with TLS, its CA too.
    """
    change = accounts.add(settings_from(state_dir=state_dir).state_dir, name, role, out_file)
    if json_output:
        print_json(change.as_json())
        return
    when = "in effect now" if change.applied else "in effect when the server starts"
    out.print(f"added {role} {name}: credentials in {change.creds} ({when})")


@users_app.command("list")
@guarded
def list_users(state_dir: StateDir = None, json_output: Json = False) -> None:
    """The users and their roles (never their passwords)."""
    rows = accounts.listed(settings_from(state_dir=state_dir).state_dir)
    if json_output:
        print_json(rows)
        return
    table = Table()
    for column in ("user", "role", "added"):
        table.add_column(column)
    for row in rows:
        added = row["added"]
        when = "(the server's own)" if added is None else _when(float(str(added)))
        table.add_row(str(row["user"]), str(row["role"]), when)
    out.print(table)


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds")


@users_app.command("revoke")
@guarded
def revoke(
    name: Annotated[str, typer.Argument(help="the user to revoke")],
    state_dir: StateDir = None,
    json_output: Json = False,
) -> None:
    """Remove a user: its logins are refused and its connections closed."""
    change = accounts.revoke(settings_from(state_dir=state_dir).state_dir, name)
    if json_output:
        print_json(change.as_json() | {"revoked": True})
        return
    when = "in effect now" if change.applied else "in effect when the server starts"
    out.print(f"revoked {change.user.role} {name} ({when})")
