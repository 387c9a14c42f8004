"""A chaos campaign on a NATS cluster: 3 nodes, R3 streams, two servers (active and
standby), two workers with compute credentials.

`jobstream dev-cluster` runs the nodes (and starts a killed one again); two `jobstream
server` processes share the log, one scheduler and one projector active by lease; two
`jobstream worker` processes log in as a compute identity. Killed with SIGKILL in turn:
the node that leads the EVENTS stream, the server whose scheduler is active (the other
must take over; the killed one is started again and waits as standby), a worker. The
audit is the single-server campaign's: a plain NATS client counts each job's endings,
live executions are sampled for overlaps, the active projector's read models equal a
rebuild.

    python -m tests.chaos.cluster_campaign --jobs 500 --rounds 2 [--keep DIR]
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import nats
from nats.js import JetStreamContext

from jobstream.streams.connection import Connection

from ..integration.processes import jobstream, spawn, wait_for_server
from .campaign import Campaign, _wait_until, main

CLUSTER_VICTIMS = ("stream-leader", "active-server", "worker")
TAKEOVER_TIMEOUT_S = 30.0


class ClusterCampaign(Campaign):
    STARTED = ("cluster", "server-a", "server-b", "worker-a", "worker-b")
    VICTIMS = CLUSTER_VICTIMS
    PACE = "0.0"  # 10-90 ms jobs: 500 of them in seconds on four slots

    def __init__(self, root: Path, jobs: int, lease_s: float = 5.0) -> None:
        super().__init__(root, jobs, lease_s)
        self.lease_s = lease_s
        self.cluster = root / "cluster"
        self.compute = root / "compute.json"

    def start(self, kind: str) -> None:
        log = self.root / f"{kind}.log"
        if kind == "cluster":
            args = ("dev-cluster", "--state-dir", str(self.cluster))
            self.processes[kind] = spawn(*args, cwd=self.root, log=log)
            self.url = wait_for_server(self.cluster, self.processes[kind], timeout=60)
            self._configure()
        elif kind.startswith("server"):
            args = ("server", "--state-dir", str(self.root / kind))
            self.processes[kind] = spawn(*args, cwd=self.root, log=log)
        else:  # as a node elsewhere would: its compute credentials, the cluster's URL
            args = ("--creds", str(self.compute), "worker", "--cpus", "2", "--memory", "1g")
            self.processes[kind] = spawn(*args, cwd=self.root, log=log)

    def _configure(self) -> None:
        """Every later process (servers, CLI) finds the cluster by jobstream.toml; the
        workers get a compute identity."""
        public = json.loads((self.cluster / "server.json").read_text())["url"]
        admin = self.cluster / "credentials.json"
        (self.root / "jobstream.toml").write_text(
            f"lease_s = {self.lease_s}\nreplicas = 3\n"
            f"nats_url = {json.dumps(public)}\ncreds = {json.dumps(str(admin))}\n"
        )
        added = jobstream(
            "users", "add", "node", "--role", "compute", "--state-dir", str(self.cluster),
            "--out", str(self.compute), cwd=self.root,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr

    def kill(self, kind: str) -> None:
        self.audit.kills[kind] = self.audit.kills.get(kind, 0) + 1
        if kind == "stream-leader":
            leader = anyio.run(self._stream_leader)
            os.kill(int((self.cluster / "run" / f"{leader}.pid").read_text()), signal.SIGKILL)
            return
        if kind == "worker":
            victim = "worker-a"
        else:  # the active one (none for a moment while the cluster elects a leader)
            _wait_until(lambda: self._server_of(anyio.run(self._holder, "scheduler")) != "")
            victim = self._server_of(anyio.run(self._holder, "scheduler"))
        process = self.processes[victim]
        killed_at = time.monotonic()
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        if kind == "active-server":
            _wait_until(lambda: self._server_of(anyio.run(self._holder, "scheduler")) not in
                        (victim, ""), TAKEOVER_TIMEOUT_S)  # fmt: skip
            self.audit.takeovers_s.append(round(time.monotonic() - killed_at, 2))
        time.sleep(0.5)
        self.start(victim)

    async def _stream_leader(self) -> str:
        """The node leading EVENTS (asked again while the cluster elects one)."""
        while True:
            with contextlib.suppress(nats.errors.Error, TimeoutError, AssertionError):
                async with self._plain() as js:
                    info = await js.stream_info("EVENTS")
                assert info.cluster is not None and info.cluster.leader is not None
                return info.cluster.leader
            await anyio.sleep(0.2)

    async def _holder(self, key: str) -> str:
        """The process (pid) holding a lease, as the LEASES bucket says ("" while
        released or while the cluster does not answer)."""
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            async with self._plain() as js:
                entry = await (await js.key_value("LEASES")).get(key)
            return str(json.loads(entry.value or b"{}")["holder"]).split(":")[1]
        return ""

    @contextlib.asynccontextmanager
    async def _plain(self) -> AsyncIterator[JetStreamContext]:
        """A plain nats-py client of the cluster (no jobstream code)."""
        nc = await nats.connect(self.url.split(","), connect_timeout=2)
        try:
            yield nc.jetstream(timeout=2)
        finally:
            await nc.close()

    def _server_of(self, pid: str) -> str:
        return next((k for k, p in self.processes.items() if str(p.pid) == pid), "")

    async def _projector(self, conn: Connection) -> tuple[subprocess.Popen[bytes], Path]:
        name = self._server_of(await self._holder("projector"))
        return self.processes[name], self.root / name / "jobstream.duckdb"


if __name__ == "__main__":
    sys.exit(main(ClusterCampaign, jobs=500, rounds=1, interval=2.0))
