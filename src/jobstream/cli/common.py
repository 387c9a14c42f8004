"""What every command shares: settings flags, async entry, one-line errors, JSON output."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import anyio
import typer
from rich.console import Console

from jobstream.config import Settings, load_settings
from jobstream.errors import ConfigError, JobstreamError
from jobstream.model import Resources
from jobstream.spec.units import memory_mib, runtime_seconds

P = ParamSpec("P")
T = TypeVar("T")

# Piped output (logs, CI, grep) gets wide tables rather than wrapped cells.
PIPED_WIDTH = 200
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else PIPED_WIDTH)
err = Console(
    stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else PIPED_WIDTH
)
DEBUG = {"on": False}

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
    return load_settings(**flags)


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
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def run_async(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run on asyncio, with uvloop where it is installed (jobs spawn in threads anyway)."""
    logging.basicConfig(
        level=logging.DEBUG if DEBUG["on"] else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        import uvloop  # noqa: F401
    except ImportError:
        options: dict[str, Any] = {}
    else:
        options = {"use_uvloop": True}
    return anyio.run(func, *args, backend="asyncio", backend_options=options)


def print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str), highlight=False)


def machine_memory_mib() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


def parse_memory(value: str | None, flag: str) -> int:
    if value is None:
        return machine_memory_mib()
    try:
        return memory_mib(int(value) if value.isdigit() else value)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from exc


_CLOCK = re.compile(r"(?:(\d+)-)?(\d+):(\d{2}):(\d{2})\Z")


def parse_duration(value: str | None, flag: str) -> float:
    """Seconds from '3600', 'PT1H', '01:00:00' or '1-00:00:00' (Slurm style); None = forever."""
    if value is None:
        return float("inf")
    text = value.strip()
    if clock := _CLOCK.match(text):
        days, hours, minutes, seconds = (int(g or 0) for g in clock.groups())
        return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    try:
        return float(text) if re.fullmatch(r"\d+(\.\d+)?", text) else runtime_seconds(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}; or seconds, or HH:MM:SS") from exc


def capacity_from(cpus: int | None, memory: str | None, gpus: int, walltime_s: float) -> Resources:
    """A worker's capacity: this machine's by default, or what the flags say."""
    return Resources(
        num_cpus=cpus or os.cpu_count() or 1,
        memory_mib=parse_memory(memory, "--memory"),
        num_gpus=gpus,
        num_nodes=1,
        runtime_s=int(min(walltime_s, 10**9)),
    )
