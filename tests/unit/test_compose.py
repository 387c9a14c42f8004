"""compose.yaml and the Dockerfile as written: containers cannot run here, so every
``jobstream …`` they hold is parsed by the real command line (without running it), and the
services, volumes, health checks and start order are checked from the file."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer._click.exceptions import UsageError  # Typer's own Click: no public name for it
from typer.core import TyperGroup

from jobstream.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
NODES = ["nats1", "nats2", "nats3"]
SERVERS = ["server-a", "server-b"]
WORKERS = ["worker-1", "worker-2"]
NODE_URLS = ",".join(f"nats://{node}:4222" for node in NODES)
CONTROL = {"&&", "||", ";", "|"}  # what separates the simple commands of a shell line


def check_command(argv: Sequence[str]) -> None:
    """Parse a ``jobstream …`` command line as the real CLI would, down to its
    sub-command, without running it: UsageError when jobstream would refuse it."""
    assert argv[0] == "jobstream", argv
    command = typer.main.get_command(app)
    try:
        context = command.make_context("jobstream", list(argv[1:]))
        while isinstance(command, TyperGroup):
            # Click keeps the sub-command's name apart from its arguments.
            rest = [*context._protected_args, *context.args]
            if not rest:
                context.fail("Missing command.")
            name, found, args = command.resolve_command(context, rest)
            assert name is not None and found is not None
            command, context = found, found.make_context(name, args, parent=context)
    except typer.Exit as done:  # --help, --version: they print and end, successfully
        assert done.exit_code == 0, argv


def simple_commands(argv: Sequence[str]) -> list[list[str]]:
    """The commands a container runs: ``sh -c SCRIPT`` split at ``&&``, ``||``, ``;``
    and ``|``; any other command line is one command."""
    if list(argv[:2]) != ["sh", "-c"]:
        return [list(argv)]
    lexer = shlex.shlex(argv[2], posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found: list[list[str]] = [[]]
    for token in lexer:
        if token in CONTROL:
            found.append([])
        else:
            found[-1].append(token)
    return [command for command in found if command]


def service_commands(service: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """(where, argv) of a service's command and health check, both written as lists (no
    string for compose to split) so that what runs is what is checked."""
    command = service.get("command")
    if command is not None:
        assert isinstance(command, list), command
        yield from (("command", one) for one in simple_commands(command))
    test = service.get("healthcheck", {}).get("test")
    if test is not None:
        assert isinstance(test, list) and test[0] == "CMD", test
        yield from (("healthcheck", one) for one in simple_commands(test[1:]))


def dockerfile_commands(text: str) -> Iterator[list[str]]:
    """The commands of the Dockerfile's RUN, CMD and ENTRYPOINT instructions."""
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() not in {"RUN", "CMD", "ENTRYPOINT"}:
            continue
        rest = rest.strip()
        argv = json.loads(rest) if rest.startswith("[") else ["sh", "-c", rest]
        yield from simple_commands(argv)


def jobstream_commands() -> list[tuple[str, list[str]]]:
    """Every jobstream command of compose.yaml and the Dockerfile, named by where it is."""
    found = [
        (f"{name}:{where}", argv)
        for name, service in SERVICES.items()
        for where, argv in service_commands(service)
    ]
    found += [("Dockerfile", argv) for argv in dockerfile_commands(DOCKERFILE)]
    return [(where, argv) for where, argv in found if argv[0] == "jobstream"]


def flag_values(argv: Sequence[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, token in enumerate(argv[:-1]) if token == flag]


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Target → (named volume, mode) of a service's short-syntax volumes."""
    found: dict[str, tuple[str, str]] = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        found[target] = (source, mode[0] if mode else "rw")
    return found


def test_the_services_of_a_cluster() -> None:
    assert set(SERVICES) == {"init", *NODES, *SERVERS, *WORKERS}
    assert SERVICES["init"]["restart"] == "no"


@pytest.mark.parametrize(
    "argv", [pytest.param(argv, id=where) for where, argv in jobstream_commands()]
)
def test_every_jobstream_command_is_one_the_cli_takes(argv: list[str]) -> None:
    check_command(argv)


def test_the_check_sees_every_jobstream_command() -> None:
    """One the extraction missed would be checked by nobody."""
    found = sorted(where for where, _ in jobstream_commands())
    expected = ["init:command", "init:command", "Dockerfile"]
    expected += [f"{server}:{part}" for server in SERVERS for part in ("command", "healthcheck")]
    expected += [f"{worker}:command" for worker in WORKERS]
    assert found == sorted(expected)


@pytest.mark.parametrize(
    "argv",
    [
        "jobstream no-such-command",
        "jobstream worker --no-such-flag",
        "jobstream --no-such-flag worker",
        "jobstream users frobnicate",
        "jobstream users add",  # its NAME is missing
        "jobstream worker --cpus many",
        "jobstream --creds /config/credentials.json",  # no command
        "jobstream status one two",
    ],
)
def test_the_check_refuses_what_jobstream_would(argv: str) -> None:
    with pytest.raises(UsageError):
        check_command(shlex.split(argv))


@pytest.mark.parametrize(
    "argv",
    [
        "jobstream users add worker --role compute --state-dir /config --out /config/compute.json",
        "jobstream --creds /c.json worker --nats-url nats://a:4222,nats://b:4222 --workdir /work",
        "jobstream --version",
    ],
)
def test_the_check_takes_what_jobstream_would(argv: str) -> None:
    check_command(shlex.split(argv))


def test_a_shell_line_is_split_into_its_commands() -> None:
    line = ["sh", "-c", "set -e; test -f a || jobstream x --y 'z w' && jobstream v | cat"]
    assert simple_commands(line) == [
        ["set", "-e"],
        ["test", "-f", "a"],
        ["jobstream", "x", "--y", "z w"],
        ["jobstream", "v"],
        ["cat"],
    ]


def test_every_volume_mounted_is_declared_and_used() -> None:
    mounted = {source for service in SERVICES.values() for source, _ in mounts(service).values()}
    assert mounted == set(COMPOSE["volumes"])


def test_each_node_and_server_keeps_its_own_volume_and_workers_share_work() -> None:
    own = [mounts(SERVICES[node])["/data"] for node in NODES]
    own += [mounts(SERVICES[server])["/state"] for server in SERVERS]
    assert len(set(own)) == len(own)
    assert {mounts(SERVICES[worker])["/work"] for worker in WORKERS} == {("work", "rw")}


def test_only_init_writes_the_configuration_and_workers_never_see_it() -> None:
    """The config volume holds the admin's login and the route password: jobs, which can
    read what their worker can, must not reach it."""
    for name, service in SERVICES.items():
        config = mounts(service).get("/config")
        if name in WORKERS:
            assert config is None, name
        else:
            assert config == ("config", "rw" if name == "init" else "ro"), name


def test_nodes_and_servers_have_health_checks() -> None:
    for node in NODES:
        test = SERVICES[node]["healthcheck"]["test"]
        assert "http://localhost:8222/healthz?js-server-only=true" in " ".join(test)
    for server in SERVERS:
        test = SERVICES[server]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "jobstream"]  # checked as a command above


def test_the_start_order() -> None:
    def waits_for(name: str) -> dict[str, str]:
        return {dep: how["condition"] for dep, how in SERVICES[name]["depends_on"].items()}

    for node in NODES:
        assert waits_for(node) == {"init": "service_completed_successfully"}
    for server in SERVERS:
        assert waits_for(server) == dict.fromkeys(NODES, "service_healthy")
    for worker in WORKERS:
        assert waits_for(worker) == dict.fromkeys(SERVERS, "service_healthy")


def test_the_cluster_is_wired_together() -> None:
    """The nodes init configures are the node services, each runs its own
    configuration, and every process reaches all of them."""
    cluster, add = (
        argv for argv in simple_commands(SERVICES["init"]["command"]) if argv[0] == "jobstream"
    )
    assert flag_values(cluster, "--host") == NODES
    assert flag_values(cluster, "--nodes") == [str(len(NODES))]
    assert flag_values(cluster, "--store") == ["/data"]
    for i, node in enumerate(NODES, 1):
        command = SERVICES[node]["command"]
        assert flag_values(command, "-c") == [f"/config/run/node-{i}.conf"]
        # nats-server stops when it cannot write its pid file: not in the read-only config
        assert flag_values(command, "-P") == [f"/data/node-{i}.pid"]
        assert mounts(SERVICES[node])["/data"] == (f"{node}-data", "rw")
    for name in [*SERVERS, *WORKERS]:
        for _, argv in service_commands(SERVICES[name]):
            assert flag_values(argv, "--nats-url") == [NODE_URLS], name
    for server in SERVERS:
        command = SERVICES[server]["command"]
        assert flag_values(command, "--creds") == ["/config/credentials.json"]
        assert flag_values(command, "--replicas") == [str(len(NODES))]
    for worker in WORKERS:
        assert flag_values(SERVICES[worker]["command"], "--creds") == flag_values(add, "--out")
    assert flag_values(add, "--role") == ["compute"]


def test_the_dockerfile_installs_jobstream_for_a_user_not_root() -> None:
    assert "FROM python:3.12-slim\n" in DOCKERFILE
    assert ["pip", "install", "--no-cache-dir", "."] in list(dockerfile_commands(DOCKERFILE))
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)
