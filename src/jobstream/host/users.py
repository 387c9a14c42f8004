"""Identities of a state directory's server and what each role may do, as nats-server
permissions: the server enforces them, not our processes.

- ``admin``: everything. The server's own login (``credentials.json``) is one; its
  scheduler and projector run with it.
- ``compute``: take work (WORK), read the log, append only the kinds of events a worker
  writes about an attempt (claimed, started, ended, lost, terminated) and its own
  lifecycle, write logs. Never a JobSubmitted or WorkflowSubmitted, never a stream
  deleted, purged or created.
- ``submitter``: only requests to the submitter service under its own name
  (``jobstream.api.<name>.>``) and the answers to them; the service tells whose a
  request is by that subject token, which the server vouches for.

Users are kept in ``STATE_DIR/users.json`` (mode 0600) and written into the server's
authorization file, which a running nats-server re-reads on SIGHUP
(:func:`jobstream.host.embedded.apply_users`): adding or revoking a user takes effect
at once, and a revoked user's connections are closed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import msgspec

from jobstream.errors import ConfigError
from jobstream.events import (
    JobClaimed,
    JobCompleted,
    JobFailed,
    JobLost,
    JobRetryScheduled,
    JobStarted,
    JobTerminated,
    JobTimedOut,
    WorkerLost,
    WorkerStarted,
    WorkerStopped,
)
from jobstream.host import credentials
from jobstream.host.credentials import CREDENTIALS_FILE, Credentials, write_private
from jobstream.streams.subjects import (
    WORK_STREAM,
    api_subjects,
    consumer_created_subject,
    control_subjects,
    inbox_prefix,
    kind_filter,
    lease_probe_subject,
    worker_api_subjects,
)

USERS_FILE = "users.json"
LOCK_FILE = "users.lock"
AUTHORIZATION_FILE = "authorization.conf"  # in STATE_DIR/run, included by nats-server.conf
PID_FILE = "nats-server.pid"  # in STATE_DIR/run
ROLES = ("admin", "compute", "submitter")
NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
ATTEMPT_KINDS = (JobClaimed, JobStarted, JobCompleted, JobFailed, JobTimedOut,
                 JobRetryScheduled, JobTerminated, JobLost)  # fmt: skip
WORKER_KINDS = (WorkerStarted, WorkerStopped, WorkerLost)


class User(msgspec.Struct, frozen=True):
    name: str
    role: str
    password: str
    added: float


class _Kept(msgspec.Struct):
    users: list[User] = []


def permissions(role: str, name: str) -> dict[str, object] | None:
    """nats-server permissions of a role (None: no limits)."""
    if role == "admin":
        return None
    replies = [f"{inbox_prefix(name)}.>"]
    if role == "submitter":
        return {"publish": {"allow": [api_subjects(name)]}, "subscribe": {"allow": replies}}
    publish = [
        *(kind_filter(kind) for kind in (*ATTEMPT_KINDS, *WORKER_KINDS)),
        lease_probe_subject("*"),
        *worker_api_subjects(),
    ]
    subscribe = [*replies, control_subjects(), consumer_created_subject(WORK_STREAM)]
    return {
        "publish": {"allow": publish},
        "subscribe": {"allow": subscribe},
        "allow_responses": True,  # answering lease probes
    }


def load(state_dir: Path) -> list[User]:
    path = state_dir / USERS_FILE
    if not path.exists():
        return []
    try:
        return msgspec.json.decode(path.read_bytes(), type=_Kept).users
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not a users file: {exc}") from None


def add(state_dir: Path, name: str, role: str, handed: Callable[[User], None]) -> User:
    """A new user with a new password, kept once ``handed`` (writing its credentials
    file) succeeded: nothing is kept when it fails. ConfigError for a bad name or role,
    or a name taken."""
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"user name {name!r}: use 1-32 lowercase letters, digits, '-' or '_', "
            "starting with a letter"
        )
    if role not in ROLES:
        raise ConfigError(f"role {role!r}: one of {', '.join(ROLES)}")
    with _changing(state_dir):
        users = load(state_dir)
        if any(u.name == name for u in users) or name == admin_name(state_dir):
            raise ConfigError(f"user {name!r} exists: revoke it first to make it anew")
        user = User(name, role, secrets.token_urlsafe(32), time.time())
        handed(user)
        _save(state_dir, [*users, user])
    return user


def revoke(state_dir: Path, name: str) -> User:
    with _changing(state_dir):
        users = load(state_dir)
        found = [u for u in users if u.name == name]
        if not found:
            raise ConfigError(f"no user {name!r} (see `jobstream users list`)")
        _save(state_dir, [u for u in users if u.name != name])
    return found[0]


def admin_name(state_dir: Path) -> str | None:
    path = state_dir / CREDENTIALS_FILE
    return credentials.load(path).user if path.exists() else None


@contextlib.contextmanager
def _changing(state_dir: Path) -> Iterator[None]:
    """Hold the users file's lock: processes adding and revoking at once (autoalloc, the
    allocation watcher, an admin) must not lose each other's changes."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _save(state_dir: Path, users: list[User]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    write_private(state_dir / USERS_FILE, msgspec.json.encode(_Kept(users)).decode())


def authorization(admin: Credentials, users: Iterable[User]) -> str:
    """nats-server's authorization block: the admin login and every user's."""
    entries = [_entry(admin.user, admin.password, None)]
    entries += [_entry(u.name, u.password, permissions(u.role, u.name)) for u in users]
    return "authorization {\n  users = [\n" + "".join(entries) + "  ]\n}\n"


def _entry(user: str, password: str, allowed: dict[str, object] | None) -> str:
    fields: dict[str, object] = {"user": user, "password": password}
    if allowed is not None:
        fields["permissions"] = allowed
    return f"    {json.dumps(fields)}\n"


def write_authorization(state_dir: Path, admin: Credentials) -> None:
    """The authorization file nats-server.conf includes, as the users are now."""
    run = state_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    write_private(run / AUTHORIZATION_FILE, authorization(admin, load(state_dir)))
