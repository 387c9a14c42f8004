"""kill -9 nats-server itself mid-run and restart it on the same store: scheduler,
projector and worker ride through the outage and the workflow still finishes with every
job completed exactly once in its recorded history."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from jobstream.host.embedded import server_binary
from jobstream.projections.query import remote_query
from jobstream.projections.service import replay_into
from jobstream.streams.connection import open_connection
from jobstream.streams.subjects import EVENTS_STREAM

from ..integration.helpers import free_port
from ..integration.processes import jobstream, spawn, stop
from ..integration.test_read_models import dump


def start_nats(port: int, store: Path, log: Path) -> subprocess.Popen[bytes]:
    args = [str(server_binary()), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    raise TimeoutError("nats-server did not start")


def status(wf: str, url: str, cwd: Path) -> dict[str, object] | None:
    """The workflow's status, or None while the server is (re)starting."""
    try:
        result = jobstream("status", wf, "--json", "--nats-url", url, cwd=cwd, timeout=30)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(result.stdout) if result.returncode == 0 else None


async def caught_up(url: str) -> None:
    """Wait until the projector has committed everything in the log."""
    async with open_connection(url) as conn:
        last = (await conn.js.stream_info(EVENTS_STREAM)).state.last_seq
        with anyio.fail_after(30):
            while (await remote_query(conn.nc, "select seq from checkpoint")).to_pylist() != [
                {"seq": last}
            ]:
                await anyio.sleep(0.1)


async def rebuild(url: str, path: Path) -> None:
    async with open_connection(url) as conn:
        await replay_into(conn, path)


def test_nats_server_killed_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSTREAM_LEASE_S", "5")
    port, store = free_port(), tmp_path / "store"
    url = f"nats://127.0.0.1:{port}"
    nats = start_nats(port, store, tmp_path / "nats.log")
    spec = tmp_path / "many.yaml"
    spec.write_text(
        "name: many\njobs:\n  - name: j{i:03d}\n"
        "    command: echo {i} >> ran_{i:03d}; sleep 0.05\n"
        "    parameters: {i: '0:199'}\n"
    )
    common = ("--nats-url", url, "--state-dir", str(tmp_path / "state"))
    services = spawn("server", *common, cwd=tmp_path, log=tmp_path / "server.log")
    worker = spawn("worker", *common, "--cpus", "2", "--memory", "1g", cwd=tmp_path,
                   log=tmp_path / "worker.log")  # fmt: skip
    try:
        submitted = jobstream("submit", str(spec), "--json", "--nats-url", url, cwd=tmp_path)
        assert submitted.returncode == 0, submitted.stderr
        wf = json.loads(submitted.stdout)["workflow"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = status(wf, url, tmp_path)
            if now and sum(now["counts"].values()) and now["counts"]["completed"] >= 40:  # type: ignore[index,union-attr]
                break
            time.sleep(0.2)
        assert now and now["counts"]["completed"] < 200, now  # type: ignore[index]  # mid-run
        os.kill(nats.pid, signal.SIGKILL)
        nats.wait()
        time.sleep(1.0)
        nats = start_nats(port, store, tmp_path / "nats.log")
        deadline, final = time.monotonic() + 150, None
        while time.monotonic() < deadline:
            final = status(wf, url, tmp_path)
            if final and final["finished"]:
                break
            time.sleep(0.5)
        assert final and final["finished"], (final, (tmp_path / "worker.log").read_text()[-3000:])
        events = jobstream("events", wf, "--json", "--nats-url", url, cwd=tmp_path).stdout
        codes = [stop(worker)]
        anyio.run(caught_up, url)
        codes.append(stop(services))
        anyio.run(rebuild, url, tmp_path / "rebuilt.duckdb")
    finally:
        for process in (worker, services):
            stop(process)
        nats.terminate()
        nats.wait()
    assert dump(tmp_path / "state" / "jobstream.duckdb") == dump(tmp_path / "rebuilt.duckdb")
    assert final["counts"]["completed"] == 200  # type: ignore[index]
    history: dict[int, list[str]] = {}
    for line in events.splitlines():
        event = json.loads(line)
        if event["subject"].split(".")[2] == "job":
            history.setdefault(int(event["subject"].split(".")[3]), []).append(event["type"])
    assert len(history) == 200
    for n, kinds in history.items():
        assert kinds.count("JobCompleted") == 1 and kinds[-1] == "JobCompleted", (n, kinds)
        # every attempt that did not complete is visibly cut off
        assert kinds.count("JobStarted") - 1 == kinds.count("JobLost"), (n, kinds)
        runs = (tmp_path / f"ran_{n:03d}").read_text().splitlines()
        assert len(runs) == kinds.count("JobStarted"), (n, kinds, runs)
    assert codes == [0, 0]
