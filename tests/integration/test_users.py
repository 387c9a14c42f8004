"""`jobstream users` without a running server, with a stale pid file, and with bad input."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import anyio
import pytest

from jobstream.errors import ConfigError
from jobstream.host import accounts, users
from jobstream.host.embedded import embedded


def test_users_are_kept_private_and_applied_when_the_server_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    change = accounts.add(state, "alice", "submitter")
    assert not change.applied and change.creds is not None
    made = json.loads(change.creds.read_text())
    assert made["role"] == "submitter" and "url" not in made and "ca" not in made
    for private in (
        change.creds,
        state / users.USERS_FILE,
        state / "run" / users.AUTHORIZATION_FILE,
    ):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert [row["user"] for row in accounts.listed(state)][-1] == "alice"
    for name, role, why in (
        ("Alice", "submitter", "lowercase"),
        ("bob", "root", "one of admin"),
        ("alice", "compute", "exists"),
        ("a.b", "compute", "lowercase"),
    ):
        with pytest.raises(ConfigError, match=why):
            accounts.add(state, name, role)
    with pytest.raises(ConfigError, match="no user 'carol'"):
        accounts.revoke(state, "carol")
    with pytest.raises(ConfigError, match="cannot write the credentials"):
        accounts.add(state, "carol", "compute", Path("/proc/no/carol.json"))
    assert "carol" not in [row["user"] for row in accounts.listed(state)]  # nothing kept


async def test_a_stale_pid_file_signals_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with embedded(state):
        pass  # leaves run/nats-server.conf and a pid file behind
    async with await anyio.open_process(["sleep", "30"]) as bystander:
        (state / "run" / users.PID_FILE).write_text(str(bystander.pid))
        assert not accounts.add(state, "alice", "submitter").applied
        await anyio.sleep(0.2)
        assert bystander.returncode is None  # not sent SIGHUP (which would have ended it)
        bystander.kill()
