"""What every command shares: settings flags, async entry, one-line errors, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

from jobstream.config import Settings, load_settings
from jobstream.errors import ConfigError, JobstreamError, first_user_error
from jobstream.gateway.client import submitter_session
from jobstream.host.connect import connect, submitter_url, tls_of
from jobstream.host.credentials import role_of
from jobstream.host.loop import run_async
from jobstream.spec.units import memory_mib, walltime_seconds

P = ParamSpec("P")
T = TypeVar("T")

# Piped output (logs, CI, grep) gets wide tables rather than wrapped cells.
PIPED_WIDTH = 200
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else PIPED_WIDTH)
err = Console(
    stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else PIPED_WIDTH
)
DEBUG = {"on": False}
GIVEN: dict[str, Any] = {}  # settings given before the command (jobstream --creds F …)

NatsUrl = Annotated[
    str | None,
    typer.Option(
        "--nats-url",
        help="NATS server URL (default: JOBSTREAM_NATS_URL, "
        "jobstream.toml, this directory's `jobstream server`, else embedded)",
    ),
]
StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", help="state directory (embedded store, logs) [default: .jobstream]"
    ),
]
Json = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


def settings_from(**flags: Any) -> Settings:
    """The settings, with the command's flags and those given before it."""
    return load_settings(**GIVEN, **flags)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one red line to stderr and exit."""
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def guarded(func: Callable[P, T]) -> Callable[P, T]:
    """User errors become one line and an exit code; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except JobstreamError as exc:
            if DEBUG["on"]:
                raise
            fail(_escape(str(exc)), exc.exit_code)
        except BaseExceptionGroup as group:  # raised inside a task group
            found = first_user_error(group)
            if found is None or DEBUG["on"]:
                raise
            fail(_escape(str(found)), found.exit_code)
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def run_main(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run the command's async part (see :func:`jobstream.host.loop.run_async`)."""
    return run_async(func, *args, debug=DEBUG["on"])


def on_server(
    settings: Settings,
    func: Callable[..., Awaitable[T]],
    *args: Any,
    embedded: bool = True,
    name: str = "jobstream",
) -> T:
    """Run ``func(conn, *args)`` on a connection made the way the settings say;
    ``embedded``: start an embedded server on the state directory if none runs. Not
    with a submitter's credentials: they reach no JetStream, only the submitter service."""
    if as_submitter(settings):
        command = name.removeprefix("jobstream-").replace("jobstream", "this command")
        fail(f"`jobstream {command}` is not open to submitters: ask an admin", 2)

    async def connected() -> T:
        async with connect(settings, embedded=embedded, name=name) as conn:
            return await func(conn, *args)

    return run_main(connected)


def as_submitter(settings: Settings) -> bool:
    """Whether the credentials given are a submitter's: then commands ask the submitter
    service rather than using JetStream themselves."""
    return role_of(settings.creds) == "submitter"


def on_gateway(settings: Settings, func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``func(submitter, *args)`` as the submitter the credentials name."""

    async def connected() -> T:
        async with submitter_session(submitter_url(settings), tls=tls_of(settings)) as submitter:
            return await func(submitter, *args)

    return run_main(connected)


def print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str), highlight=False)


def parse_memory(value: str | None, flag: str) -> int | None:
    """MiB from '8g', '512m' or a plain number of MiB; None when not given."""
    if value is None:
        return None
    try:
        return memory_mib(int(value) if value.isdigit() else value)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from exc


def parse_duration(value: str | None, flag: str) -> float:
    """Seconds from '3600', 'PT1H', '01:00:00' or '1-00:00:00' (Slurm style); None = forever."""
    if value is None:
        return float("inf")
    try:
        return walltime_seconds(value)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}; or seconds, or HH:MM:SS") from exc
