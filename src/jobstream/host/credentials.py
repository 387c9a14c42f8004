"""The credentials of a state directory's embedded server.

Its nats-server refuses every connection that does not log in (anyone on the machine can
reach a loopback port). The password is made once, kept in ``STATE_DIR/credentials.json``
(mode 0600: readable by the directory's owner only) and never printed; commands that find
the server through the state directory read it there, others are given the file
(``creds`` setting, ``JOBSTREAM_CREDS``). Roles per identity are a later step (see
docs/security.md).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import NamedTuple

from jobstream.errors import ConfigError

CREDENTIALS_FILE = "credentials.json"
USER = "jobstream"


class Credentials(NamedTuple):
    user: str
    password: str


def ensure(state_dir: Path) -> Credentials:
    """The state directory's credentials, made (mode 0600) if it has none yet."""
    path = state_dir / CREDENTIALS_FILE
    made = Credentials(USER, secrets.token_urlsafe(32))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load(path)
    with os.fdopen(fd, "w") as out:
        json.dump({"user": made.user, "password": made.password}, out)
    return made


def load(path: Path) -> Credentials:
    """Credentials from a file; ConfigError naming it when it cannot be used."""
    try:
        found = json.loads(path.read_text())
        return Credentials(str(found["user"]), str(found["password"]))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the credentials: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: not a credentials file (JSON with user and password)") from None


def find(creds: Path | None, state_dir: Path) -> Credentials | None:
    """The credentials to log in with: the given file, else the state directory's."""
    if creds is not None:
        return load(creds)
    path = state_dir / CREDENTIALS_FILE
    return load(path) if path.exists() else None
