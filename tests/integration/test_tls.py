"""`jobstream server --tls`: clients must use TLS and verify the server; the bare-socket
readers speak TLS too (no slower fall-back)."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import nats
import pytest

from jobstream.errors import ConfigError, ServerError
from jobstream.host import tls
from jobstream.host.embedded import embedded
from jobstream.ops.submit import submit_workflow
from jobstream.streams import pull
from jobstream.streams.bulk import read_bulk
from jobstream.streams.connection import open_connection
from jobstream.streams.urls import public

from .helpers import workflow


async def test_a_tls_server_is_verified_and_read_over_tls_by_every_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    files = tls.ensure_made(state, ["node7.example"])
    for private in (files.key, state / "tls" / "ca-key.pem"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    ca = (state / "tls" / tls.CA_FILE).read_text()
    async with embedded(state, tls=files) as server:
        assert server.url.startswith("tls://")
        plain = server.dial_url.replace("tls://", "nats://")
        with pytest.raises(ServerError):  # no TLS, no entry
            async with open_connection(plain):
                pass
        with pytest.raises(ServerError, match=r"TLS failed.*--tls-ca"):  # not our CA
            async with open_connection(server.dial_url):
                pass
        started: list[bool] = []
        start_tls = pull.Socket.start_tls

        async def spy(self: pull.Socket, context: ssl.SSLContext, hostname: str) -> None:
            started.append(True)
            await start_tls(self, context, hostname)

        monkeypatch.setattr(pull.Socket, "start_tls", spy)
        async with open_connection(server.dial_url, tls=tls.context(ca)) as conn:
            wf = await submit_workflow(
                conn, workflow(("a", "true", ()), ("b", "true", ())), workdir="."
            )
            bulk = [raw async for raw in read_bulk(conn.js, conn.endpoint)]
            assert sum(len(b.seqs) for b in bulk) == 3 and wf
        assert started  # the bare reader did the TLS handshake itself
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(public(server.url), allow_reconnect=False, tls=tls.context(ca))


def test_the_made_certificate_covers_new_hosts_with_the_same_ca(tmp_path: Path) -> None:
    made = tls.ensure_made(tmp_path, [])
    cert, ca = made.cert.read_bytes(), (tmp_path / "tls" / tls.CA_FILE).read_bytes()
    assert tls.ensure_made(tmp_path, []).cert.read_bytes() == cert  # kept
    assert tls.ensure_made(tmp_path, ["10.0.0.7"]).cert.read_bytes() != cert  # made anew
    assert (tmp_path / "tls" / tls.CA_FILE).read_bytes() == ca  # clients keep trusting it
    with pytest.raises(ConfigError, match="not a host name"):
        tls.ensure_made(tmp_path, ["bad name!"])
