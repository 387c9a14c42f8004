"""Run the real ``jobstream`` CLI as separate processes, as users and Slurm would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from jobstream.config import Settings
from jobstream.host.connect import logged_in

CLI = [sys.executable, "-m", "jobstream"]


def jobstream(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one command to completion and capture its output."""
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def alive(pid: int) -> bool:
    """Whether a process (or a zombie not yet reaped) with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _as_from_a_terminal() -> None:
    """Ctrl-C (SIGINT) interrupts the command, as it does one typed at a terminal. A
    shell that starts the test suite in the background ignores SIGINT for it, and an
    ignored signal stays ignored in every program it starts: the command would then
    run on through a Ctrl-C (as it should, started that way)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(*args: str, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start a long-running command (server, worker) with its output in ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*CLI, *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_as_from_a_terminal,
        )


def wait_for_server(state_dir: Path, process: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """URL of a `jobstream server` once it recorded itself in server.json, with the
    state directory's login (the tests' clients and workers use it as is)."""
    deadline = time.monotonic() + timeout
    path = state_dir / "server.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jobstream server exited with {process.returncode}")
        if path.exists():
            try:
                found = json.loads(path.read_text())
            except ValueError:
                found = {}
            if found.get("pid") == process.pid:  # not a killed predecessor's record
                return logged_in(str(found["url"]), Settings(state_dir=state_dir))
        time.sleep(0.05)
    raise TimeoutError("jobstream server did not start")


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> int:
    """SIGTERM and wait; SIGKILL if it does not stop (a test failure, reported by the caller)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


@contextlib.contextmanager
def served(workdir: Path, *worker_args: str) -> Iterator[str]:
    """A `jobstream server` and one `jobstream worker` in ``workdir``; yields the URL.

    Both must stop cleanly (exit 0) on SIGTERM.
    """
    server = spawn("server", cwd=workdir, log=workdir / "server.log")
    worker = None
    try:
        url = wait_for_server(workdir / ".jobstream", server)
        worker = spawn("worker", *worker_args, cwd=workdir, log=workdir / "worker.log")
        yield url
    finally:
        codes = [stop(p) for p in (worker, server) if p is not None]
    assert codes == [0] * len(codes), codes
