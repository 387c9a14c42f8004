"""The CLI and the Python client are two faces of the same operations: every command
has a client method (a new command without one fails here)."""

from __future__ import annotations

import inspect

from jobstream import Client
from jobstream.cli.app import app

CLIENT_FOR = {
    "run": "run",
    "check": "check",
    "submit": "submit",
    "server": "serve",
    "worker": "work",
    "workers": "workers",
    "status": "status",
    "watch": "watch",
    "events": "events",
    "cancel": "cancel",
    "explain": "explain",
    "restart": "restart",
    "sql": "sql",
    "projector": "serve",
    "rebuild": "rebuild",
    "archive": "archive",
    "slurm schedule-nodes": "schedule_nodes",
    "slurm allocations": "allocations",
    "slurm autoalloc": "autoalloc",
    "config show": "config",
    "users add": "add_user",
    "users list": "users",
    "users revoke": "revoke_user",
    "cluster config": "cluster_config",
    "dev-cluster": "dev_cluster",
}


def cli_commands() -> set[str]:
    names = {cmd.name or cmd.callback.__name__ for cmd in app.registered_commands if cmd.callback}
    for group in app.registered_groups:
        assert group.typer_instance is not None
        names |= {
            f"{group.name} {cmd.name or cmd.callback.__name__}"
            for cmd in group.typer_instance.registered_commands
            if cmd.callback
        }
    return names


def test_every_cli_command_has_a_client_method() -> None:
    assert cli_commands() == set(CLIENT_FOR)
    for command, method in CLIENT_FOR.items():
        found = getattr(Client, method, None)
        assert callable(found), f"`jobstream {command}` has no Client.{method}"
        assert inspect.getdoc(found), f"Client.{method} says nothing"
