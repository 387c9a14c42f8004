"""Settings: defaults < jobstream.toml < JOBSTREAM_* environment < CLI flags.

``jobstream.toml`` is searched upward from the current directory, then in the user
config directory (``$XDG_CONFIG_HOME/jobstream/jobstream.toml``). ``sources()`` says where
each value came from, for ``jobstream config show``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobstream.errors import ConfigError

CONFIG_NAME = "jobstream.toml"
DB_NAME = "jobstream.duckdb"  # the read models, in the state directory
DEFAULT_SYNC = "1s"
_SYNC = re.compile(r"always|([0-9]+(\.[0-9]+)?(ms|s|m|h))+")


class Settings(BaseSettings):
    """Every knob of jobstream, with the default a single-machine user wants."""

    model_config = SettingsConfigDict(env_prefix="JOBSTREAM_", extra="forbid")

    nats_url: str | None = Field(
        None, description="NATS server to use; unset: start or find the embedded one"
    )
    state_dir: Path = Field(Path(".jobstream"), description="embedded server store, logs")
    creds: Path | None = Field(
        None,
        description="credentials file to log in with (a server's STATE_DIR/credentials.json); "
        "unset: the state directory's own",
    )
    tls_ca: Path | None = Field(
        None,
        description="CA certificate (PEM) a tls:// server is verified with; unset: the "
        "credentials file's, else the state directory's tls/ca.pem, else the system's",
    )
    replicas: int = Field(
        1,
        ge=1,
        le=5,
        description="copies of every stream, KV bucket and object store kept by a NATS "
        "cluster (3 on a 3-node cluster: one node may die); set where they are first made",
    )
    partitions: int = Field(
        1,
        ge=1,
        le=64,
        description="schedulers sharing the workflows (by a hash of the id), each active "
        "on one server; every server of a deployment must give the same",
    )
    pool: str = Field("default", description="worker pool (routing label)")
    lease_s: float = Field(
        30.0, gt=0, description="WORK ack_wait: how long a claim lasts unrenewed"
    )
    idle_timeout_s: float = Field(
        0.0, ge=0, description="worker exits after this long without work (0: never)"
    )
    max_jobs: int = Field(
        10_000_000, gt=0, description="a spec may expand to at most this many jobs"
    )
    sql_timeout_s: float = Field(
        60.0, gt=0, description="a `jobstream sql` query runs at most this long"
    )
    sql_max_rows: int = Field(1_000_000, gt=0, description="and returns at most this many rows")
    retention_s: float = Field(
        30 * 86_400.0,
        ge=0,
        description="a workflow finished this many seconds ago is archived: its events "
        "move to Parquet in the object store ARCHIVE, out of EVENTS (0: never)",
    )
    slurm_poll_s: float = Field(
        5.0, gt=0, description="seconds between asking Slurm (one squeue) about allocations"
    )
    autoalloc_max_queued: int = Field(
        2, ge=1, description="autoalloc: a workflow's allocations waiting in Slurm's queue"
    )
    autoalloc_max_nodes: int = Field(
        4, ge=1, description="autoalloc: nodes of a workflow's allocations, queued or running"
    )
    autoalloc_for_submitters: bool = Field(
        False,
        description="autoalloc: take submitters' workflows whose spec asks for it (their "
        "allocations run as, and are charged to, the server's Slurm user)",
    )
    autoalloc_idle_timeout_s: float = Field(
        60.0, gt=0, description="autoalloc: an allocation's worker idle this long gives it back"
    )
    sync: str = Field(
        DEFAULT_SYNC,
        description="embedded server: write its store to disk on every write (always) "
        "or at this interval (e.g. 1s, 2m); see docs/operations.md, Durability",
    )

    @field_validator("sync")
    @classmethod
    def _sync_is_always_or_interval(cls, value: str) -> str:
        if not _SYNC.fullmatch(value):
            raise ValueError(f"{value!r} is neither 'always' nor an interval such as 30s, 2m, 1h")
        return value

    def archive_after_s(self) -> float | None:
        """Seconds after which a finished workflow is archived; None: never."""
        return self.retention_s or None

    def db_path(self) -> Path:
        """The read models' DuckDB file (written by the projector)."""
        return (self.state_dir / DB_NAME).resolve()


def find_config_file(start: Path | None = None) -> Path | None:
    """The nearest jobstream.toml upward from ``start``, else the user's one, else None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    user_dir = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "jobstream"
    candidate = user_dir / CONFIG_NAME
    return candidate if candidate.is_file() else None


def _file_values(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; valid keys: {', '.join(Settings.model_fields)}"
        )
    return values


def _env_values() -> dict[str, str]:
    prefix = "JOBSTREAM_"
    names = {name.upper(): name for name in Settings.model_fields}
    return {
        names[key[len(prefix) :]]: value
        for key, value in os.environ.items()
        if key.startswith(prefix) and key[len(prefix) :] in names
    }


def load_settings(**flags: Any) -> Settings:
    """Merge the layers; ``flags`` whose value is None are treated as not given."""
    path = find_config_file()
    merged: dict[str, Any] = {**_file_values(path), **_env_values()}
    merged.update({k: v for k, v in flags.items() if v is not None})
    try:
        # Values are already merged by precedence: bypass the env source.
        return Settings.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        why = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"setting {key!r}: {why} (from {_origin(key, path, flags)})") from exc


def _origin(key: str, path: Path | None, flags: dict[str, Any]) -> str:
    if flags.get(key) is not None:
        return "command line"
    if key in _env_values():
        return f"environment JOBSTREAM_{key.upper()}"
    if key in _file_values(path):
        return str(path)
    return "default"


def sources(**flags: Any) -> dict[str, tuple[Any, str]]:
    """Each setting's merged value and where it came from."""
    settings = load_settings(**flags)
    path = find_config_file()
    return {
        key: (getattr(settings, key), _origin(key, path, flags)) for key in Settings.model_fields
    }
