"""Two `jobstream server` processes on one log: one scheduler and one projector active
(the LEASES bucket), the other server a standby that takes over within 5 s of a kill -9
of the active one, at once after a clean stop, and a holder whose lease was taken
stops its work (fencing)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import nats
import pytest
from nats.js.kv import KeyValue

from jobstream.host.lease import PROJECTOR
from jobstream.scheduler.partition import SCHEDULER_KEY as SCHEDULER
from jobstream.streams.subjects import LEASES_BUCKET

from .processes import jobstream, spawn, stop

TAKEOVER_LIMIT_S = 5.0


@pytest.fixture
def two_servers(tmp_path: Path, nats_url: str) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    (tmp_path / "jobstream.toml").write_text(f"nats_url = {json.dumps(nats_url)}\n")
    servers = {
        name: spawn("server", "--state-dir", name, cwd=tmp_path, log=tmp_path / f"{name}.log")
        for name in ("a", "b")
    }
    try:
        yield servers
    finally:
        for process in servers.values():
            stop(process)


@pytest.fixture
async def leases(nats_url: str) -> AsyncIterator[KeyValue]:
    """The LEASES bucket, read by a plain nats-py client, once the servers made it."""
    nc = await nats.connect(nats_url)
    try:
        yield await _bucket(nc)
    finally:
        await nc.close()


async def _bucket(nc: nats.NATS) -> KeyValue:
    with anyio.fail_after(30):
        while True:
            try:
                return await nc.jetstream().key_value(LEASES_BUCKET)
            except nats.js.errors.NotFoundError:
                await anyio.sleep(0.1)


async def holder_pid(leases: KeyValue, key: str) -> int | None:
    try:
        entry = await leases.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    return int(json.loads(entry.value or b"{}")["holder"].split(":")[1])


async def until_held(leases: KeyValue, key: str, by: int, timeout_s: float = 30) -> float:
    """Seconds until ``by`` holds the lease ``key``."""
    began = time.monotonic()
    with anyio.fail_after(timeout_s):
        while await holder_pid(leases, key) != by:
            await anyio.sleep(0.05)
    return time.monotonic() - began


def other(servers: dict[str, subprocess.Popen[bytes]], pid: int) -> subprocess.Popen[bytes]:
    return next(p for p in servers.values() if p.pid != pid)


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
async def test_the_standby_takes_over(
    tmp_path: Path, two_servers: dict[str, subprocess.Popen[bytes]], leases: KeyValue, how: str
) -> None:
    with anyio.fail_after(30):
        while (active := await holder_pid(leases, SCHEDULER)) is None:
            await anyio.sleep(0.1)
    standby = other(two_servers, active)
    os.kill(active, signal.SIGKILL if how == "kill -9" else signal.SIGTERM)
    took = await until_held(leases, SCHEDULER, standby.pid)
    await until_held(leases, PROJECTOR, standby.pid)
    assert took < (TAKEOVER_LIMIT_S if how == "kill -9" else 1.5), took
    # The standby schedules: a workflow submitted now is made ready and run.
    spec = tmp_path / "after.yaml"
    spec.write_text("name: after\njobs:\n  - name: a\n    command: 'true'\n")
    worker = spawn("worker", "--idle-timeout", "20", cwd=tmp_path, log=tmp_path / "worker.log")
    try:
        done = await anyio.to_thread.run_sync(
            lambda: jobstream("submit", str(spec), "--wait", "--json", cwd=tmp_path, timeout=60)
        )
        assert done.returncode == 0, done.stderr
    finally:
        stop(worker)
    server_log = (tmp_path / ("a.log" if standby is two_servers["a"] else "b.log")).read_text()
    assert "scheduler: active here" in server_log


async def test_a_holder_whose_lease_was_taken_stops(
    tmp_path: Path, two_servers: dict[str, subprocess.Popen[bytes]], leases: KeyValue
) -> None:
    with anyio.fail_after(30):
        while (active := await holder_pid(leases, SCHEDULER)) is None:
            await anyio.sleep(0.1)
    entry = await leases.get(SCHEDULER)
    assert entry.revision is not None
    # Someone else writes the lease (as a standby that judged it expired would).
    await leases.update(SCHEDULER, b'{"holder":"intruder:1:x","since":0}', last=entry.revision)
    name = "a.log" if two_servers["a"].pid == active else "b.log"
    with anyio.fail_after(5):
        while "scheduler: lost the lease" not in (tmp_path / name).read_text():
            await anyio.sleep(0.1)


async def test_two_servers_share_the_scheduler_partitions(tmp_path: Path, nats_url: str) -> None:
    (tmp_path / "jobstream.toml").write_text(f"nats_url = {json.dumps(nats_url)}\npartitions = 2\n")
    servers = [
        spawn("server", "--state-dir", name, cwd=tmp_path, log=tmp_path / f"{name}.log")
        for name in ("a", "b")
    ]
    worker = spawn("worker", "--idle-timeout", "30", cwd=tmp_path, log=tmp_path / "w.log")
    nc = await nats.connect(nats_url)
    try:
        leases = await _bucket(nc)
        keys = ["scheduler-0-of-2", "scheduler-1-of-2"]
        with anyio.fail_after(30):  # one each (the first up takes both, then hands one over)
            while sorted([await holder_pid(leases, key) or 0 for key in keys]) != sorted(
                p.pid for p in servers
            ):
                await anyio.sleep(0.1)
        # A server given another count is refused at start, with the way out.
        odd = jobstream("server", "--state-dir", "c", "--partitions", "3", cwd=tmp_path)
        assert odd.returncode != 0 and "partitions is 2 in this deployment" in odd.stderr
        # Every workflow completes, whichever partition it hashes to; then one server
        # dies and the other decides for all.
        for round_ in ("before", "after"):
            if round_ == "after":
                os.kill(servers[0].pid, signal.SIGKILL)
                for key in keys:
                    await until_held(leases, key, servers[1].pid)
            for n in range(4):
                spec = tmp_path / f"{round_}{n}.yaml"
                spec.write_text(f"name: {round_}{n}\njobs:\n  - name: a\n    command: 'true'\n")
                done = await anyio.to_thread.run_sync(
                    lambda s=spec: jobstream("submit", str(s), "--wait", cwd=tmp_path, timeout=60)
                )
                assert done.returncode == 0, done.stderr
    finally:
        await nc.close()
        for process in (worker, *servers):
            stop(process)
