"""Users as an admin manages them (``jobstream users``, ``Client.add_user`` …): each
change written to the users file, applied to a running server at once, and a new user's
credentials written to a file to hand out: login, role, the server's URL and, with TLS,
its CA, so that ``jobstream --creds FILE`` needs nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from jobstream.errors import ConfigError
from jobstream.host import cluster, statedir, users
from jobstream.host.credentials import write_private
from jobstream.host.embedded import apply_users
from jobstream.host.tls import CA_FILE, TLS_DIR

CREDS_DIR = "creds"


class Change(NamedTuple):
    user: users.User
    creds: Path | None  # the file written for a new user
    applied: bool  # a running server took it (else: when it starts)

    def as_json(self) -> dict[str, object]:
        found: dict[str, object] = {"user": self.user.name, "role": self.user.role}
        if self.creds is not None:
            found["creds"] = str(self.creds)
        return found | {"applied": "now" if self.applied else "at the server's start"}


def add(state_dir: Path, name: str, role: str, out: Path | None = None) -> Change:
    path = out or state_dir / CREDS_DIR / f"{name}.json"
    user = users.add(state_dir, name, role, lambda made: _hand_out(state_dir, made, path))
    return Change(user, path, apply_users(state_dir))


def _hand_out(state_dir: Path, user: users.User, path: Path) -> None:
    made = {"user": user.name, "password": user.password, "role": user.role}
    found = statedir.discover(state_dir)
    planned = cluster.load(state_dir)  # a cluster's nodes, running or not
    if found is not None:
        made["url"] = found.url
    elif planned is not None:
        made["url"] = planned.url()
    ca = state_dir / TLS_DIR / CA_FILE
    if ca.exists():
        made["ca"] = ca.read_text()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(path, json.dumps(made))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the credentials: {exc.strerror}") from None


def revoke(state_dir: Path, name: str) -> Change:
    user = users.revoke(state_dir, name)
    return Change(user, None, apply_users(state_dir))


def listed(state_dir: Path) -> list[dict[str, object]]:
    """Users and roles, the server's own login first; never a password."""
    rows: list[dict[str, object]] = []
    admin = users.admin_name(state_dir)
    if admin:
        rows.append({"user": admin, "role": "admin", "added": None})
    rows += [{"user": u.name, "role": u.role, "added": u.added} for u in users.load(state_dir)]
    return rows
