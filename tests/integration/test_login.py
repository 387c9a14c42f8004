"""The embedded server lets in only who logs in with its state directory's credentials
(before: any local process could submit a job that a worker would run)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import anyio
import nats
import pytest

from jobstream.client import Client
from jobstream.config import Settings
from jobstream.errors import ServerError
from jobstream.host.connect import connect
from jobstream.host.credentials import CREDENTIALS_FILE
from jobstream.host.embedded import embedded
from jobstream.ops.submit import submit_workflow
from jobstream.streams.bulk import read_to_end
from jobstream.streams.connection import open_connection
from jobstream.streams.urls import public

from .helpers import workflow
from .processes import jobstream


async def test_only_the_state_directorys_credentials_get_in(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with embedded(state) as server:
        secret = json.loads((state / CREDENTIALS_FILE).read_text())["password"]
        for private in (state / CREDENTIALS_FILE, state / "run" / "nats-server.conf"):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert secret not in (state / "server.json").read_text()
        assert server.url == public(server.dial_url) and secret in server.dial_url
        # A forged submission from a client without the login is refused at connect.
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0)
        with anyio.fail_after(10), pytest.raises(ServerError, match="refused the login"):
            async with open_connection(server.url):
                pass
        outsider = Settings(nats_url=server.url, state_dir=tmp_path / "elsewhere")
        with anyio.fail_after(10), pytest.raises(ServerError, match="JOBSTREAM_CREDS"):
            async with connect(outsider, embedded=False):
                pass
        # The state directory's commands log in by themselves; others with the file.
        for settings in (
            Settings(state_dir=state),
            Settings(nats_url=server.url, state_dir=tmp_path / "x", creds=state / CREDENTIALS_FILE),
        ):
            async with connect(settings, embedded=False) as conn:
                wf = await submit_workflow(conn, workflow(("a", "true", ())), workdir=".")
                # The bare-socket reader logs in too (it would raise, not fall back).
                async with read_to_end(conn.js, conn.endpoint) as batches:
                    seen = [seq async for batch in batches for seq in batch.seqs]
                assert seen and wf
        login = state / CREDENTIALS_FILE
        async with Client(server.url, state_dir=tmp_path / "y", creds=login) as client:
            assert len(await client.events(wf)) == 2  # WorkflowSubmitted, JobSubmitted


def test_a_malformed_credentials_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "creds.json"
    bad.write_text("{")
    settings = Settings(nats_url="nats://127.0.0.1:1", state_dir=tmp_path, creds=bad)

    async def attempt() -> None:
        async with connect(settings, embedded=False):
            pass

    with pytest.raises(Exception, match=f"{bad}: not a credentials file"):
        anyio.run(attempt)


async def test_the_cli_logs_in_with_the_file_it_is_given(tmp_path: Path) -> None:
    state, elsewhere = tmp_path / "state", tmp_path / "elsewhere"
    elsewhere.mkdir()
    async with embedded(state) as server:
        status = ("status", "--json", "--nats-url", server.url)
        refused = await anyio.to_thread.run_sync(lambda: jobstream(*status, cwd=elsewhere))
        assert refused.returncode != 0 and "refused the login" in refused.stderr
        login = ("--creds", str(state / CREDENTIALS_FILE))
        given = await anyio.to_thread.run_sync(lambda: jobstream(*login, *status, cwd=elsewhere))
        assert given.returncode == 0, given.stderr
        assert json.loads(given.stdout) == []
