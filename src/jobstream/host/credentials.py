"""The credentials of a state directory's embedded server.

Its nats-server refuses every connection that does not log in (anyone on the machine can
reach a loopback port). The password is made once, kept in ``STATE_DIR/credentials.json``
(mode 0600: readable by the directory's owner only) and never printed; commands that find
the server through the state directory read it there, others are given the file
(``creds`` setting, ``JOBSTREAM_CREDS``). Other identities and their roles:
host/users.py.
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


def role_of(creds: Path | None) -> str:
    """The role a credentials file was made for (``jobstream users add`` writes it; the
    server's own file, or one without a role, is the admin's). Only what the client
    should do: the server enforces the role whatever a file says."""
    return _field(creds, "role") or "admin"


def ca_of(creds: Path | None) -> str | None:
    """The CA certificate (PEM) a credentials file carries for a TLS server, if any."""
    return _field(creds, "ca")


def url_of(creds: Path | None) -> str | None:
    """The server a credentials file was made for, if it names one."""
    return _field(creds, "url")


def _field(creds: Path | None, key: str) -> str | None:
    if creds is None:
        return None
    try:
        found = json.loads(creds.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None  # load() says what is wrong with the file when it is used
    return str(found) if found else None


def find(creds: Path | None, state_dir: Path) -> Credentials | None:
    """The credentials to log in with: the given file, else the state directory's."""
    if creds is not None:
        return load(creds)
    path = state_dir / CREDENTIALS_FILE
    return load(path) if path.exists() else None


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # a file of an earlier version may have had other bits
