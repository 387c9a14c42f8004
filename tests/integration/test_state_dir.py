"""One owner per state directory, a server that stays where it was, and a supervised
nats-server (issue 21, defects 5 and 8). Real `jobstream` processes, as users run them.

Before: a second `jobstream server` started a second nats-server on the same store and,
on exit, removed the first one's server.json; a restarted server took a new port, so
its workers retried the old one for ever; a nats-server that died stayed dead under
`jobstream server`, and `jobstream run` waited for it for minutes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

from jobstream.streams.urls import public

from .processes import jobstream, spawn, stop, wait_for_server

SLOW = "name: slow\njobs:\n  - name: nap\n    command: sleep 30\n"
QUICK = "name: quick\njobs:\n  - name: a\n    command: echo hi\n"


def nats_children(pid: int) -> list[int]:
    """The nats-server processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == pid and name == "nats-server":
            found.append(int(entry.name))
    return found


def wait_until(predicate: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_owner_is_refused_and_the_first_keeps_its_record(tmp_path: Path) -> None:
    state = tmp_path / ".jobstream"
    first = spawn("server", cwd=tmp_path, log=tmp_path / "first.log")
    try:
        url = wait_for_server(state, first)
        second = jobstream("server", cwd=tmp_path, timeout=30)
        assert second.returncode != 0
        assert f"in use by `jobstream server` (pid {first.pid}, {public(url)})" in second.stderr
        assert "Traceback" not in second.stderr
        assert json.loads((state / "server.json").read_text())["pid"] == first.pid
        (tmp_path / "quick.yaml").write_text(QUICK)
        run = jobstream("run", "quick.yaml", "--json", cwd=tmp_path)  # uses the server
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["succeeded"]
    finally:
        assert stop(first) == 0
    assert not (state / "server.json").exists()


def test_a_run_owns_its_directory_while_it_runs(tmp_path: Path) -> None:
    (tmp_path / "slow.yaml").write_text(SLOW)
    (tmp_path / "quick.yaml").write_text(QUICK)
    running = spawn("run", "slow.yaml", cwd=tmp_path, log=tmp_path / "run.log")
    try:
        state = tmp_path / ".jobstream"
        wait_until(lambda: (state / "server.json").exists() and nats_children(running.pid))
        seen: list[str] = []

        def listed() -> bool:  # status connects to the run's server
            status = jobstream("status", "--json", cwd=tmp_path)
            assert status.returncode == 0, status.stderr
            seen[:] = [w["name"] for w in json.loads(status.stdout)]
            return bool(seen)

        wait_until(listed)
        assert seen == ["slow"]
        assert len(nats_children(running.pid)) == 1
        second = jobstream("run", "quick.yaml", cwd=tmp_path)
        assert second.returncode != 0
        assert f"`jobstream run` (pid {running.pid}" in second.stderr
        assert "wait for it to end, or use another --state-dir" in second.stderr
    finally:
        stop(running)


def test_a_restarted_server_keeps_its_port(tmp_path: Path) -> None:
    state = tmp_path / ".jobstream"
    first = spawn("server", cwd=tmp_path, log=tmp_path / "first.log")
    url = wait_for_server(state, first)
    assert stop(first) == 0
    again = spawn("server", cwd=tmp_path, log=tmp_path / "again.log")
    try:
        assert wait_for_server(state, again) == url
    finally:
        assert stop(again) == 0


def test_the_server_starts_its_nats_server_again_when_it_dies(tmp_path: Path) -> None:
    state = tmp_path / ".jobstream"
    server = spawn("server", cwd=tmp_path, log=tmp_path / "server.log")
    worker = None
    try:
        url = wait_for_server(state, server)
        worker = spawn(
            "worker", "--cpus", "1", "--memory", "1g", cwd=tmp_path, log=tmp_path / "w.log"
        )
        wait_until(lambda: nats_children(server.pid))
        (dead,) = nats_children(server.pid)
        os.kill(dead, signal.SIGKILL)
        wait_until(lambda: nats_children(server.pid) not in ([], [dead]))
        (tmp_path / "quick.yaml").write_text(QUICK)
        submitted = jobstream("submit", "quick.yaml", "--wait", "--json", cwd=tmp_path)
        assert submitted.returncode == 0, submitted.stderr + (tmp_path / "server.log").read_text()
        assert json.loads(submitted.stdout)["succeeded"]
        assert json.loads((state / "server.json").read_text())["url"] == public(url)
    finally:
        codes = [stop(p) for p in (worker, server) if p is not None]
    assert codes == [0, 0]


def test_a_run_whose_server_cannot_come_back_exits_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "slow.yaml").write_text(SLOW)
    running = spawn("run", "slow.yaml", cwd=tmp_path, log=tmp_path / "run.log")
    state = tmp_path / ".jobstream"
    try:
        wait_until(lambda: (state / "server.json").exists() and nats_children(running.pid))
        port = int((state / "nats.port").read_text())
        (nats,) = nats_children(running.pid)
        with socket.socket() as squatter:
            os.kill(nats, signal.SIGKILL)
            wait_until(
                lambda: not nats_children(running.pid) or nats_children(running.pid) != [nats]
            )
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                squatter.bind(("127.0.0.1", port))
                squatter.listen()
            except OSError:
                pass  # the new server was faster: then kill it too, below
            for _ in range(8):  # past RESTARTS
                for pid in nats_children(running.pid):
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.3)
            code = running.wait(timeout=60)
    finally:
        stop(running)
    log = (tmp_path / "run.log").read_text()
    assert code not in (0, None)
    assert "error:" in log and ("nats-server" in log or "port" in log), log[-2000:]
    assert "Traceback" not in log


def test_a_nats_server_killed_while_the_server_starts_is_started_again(tmp_path: Path) -> None:
    """Killed before the server has connected or set up its streams (it used to end the
    server: nothing supervised the nats-server yet)."""
    server = spawn("server", cwd=tmp_path, log=tmp_path / "server.log")
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / ".jobstream" / "server.json").exists():  # nats-server is up
            assert time.monotonic() < deadline and server.poll() is None, "no server"
            time.sleep(0.002)
        os.kill(nats_children(server.pid)[0], signal.SIGKILL)  # before the server connects
        wait_until(lambda: "server ready" in (tmp_path / "server.log").read_text(), 60)
        status = jobstream("status", "--json", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert "starting it again" in (tmp_path / "server.log").read_text()
    finally:
        assert stop(server) == 0
