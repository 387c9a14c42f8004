"""A worker's guardian: a tiny process that ends the worker's jobs when the worker dies.

Jobs lead their own sessions, so nothing ties them to the worker: killed with SIGKILL,
a worker would leave its jobs running while the jobs are run again elsewhere. The
worker starts this guardian (its own session, deaf to terminal signals) and writes to
it a line per job: ``+<pid>`` once the job is spawned, ``-<pid>`` once it is reaped.
When the worker's end of the pipe closes — it exited, or died however it died — the
guardian terminates every job still listed (SIGTERM to its process group, SIGKILL to
what is left after ``GRACE_S``) and exits.

A line is shorter than ``PIPE_BUF``, so launch threads write it without a lock. This
file imports nothing of jobstream: the guardian starts as ``python -I guardian.py``.
What it cannot cover: a job spawned in the instant before its line was written, and the
loss of the whole node (the guardian goes with it; see docs/operations.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

GRACE_S = 1.0
POLL_S = 0.05
BATCH_S = 0.02  # at most this much later than the worker's death (its lines are kept)
READ_SIZE = 1 << 16  # a pipe's buffer


class Guardian:
    """The worker's side: start the guardian process and tell it about each job."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", __file__],
            stdin=subprocess.PIPE,
            start_new_session=True,  # terminal signals are for the worker, not for it
            close_fds=True,
        )
        assert self.process.stdin is not None
        self.fd = self.process.stdin.fileno()
        self.broken = False

    def _say(self, line: bytes) -> None:
        if self.broken:
            return
        try:
            os.write(self.fd, line)
        except OSError:  # it died: jobs are not guarded any more, the worker goes on
            self.broken = True

    def watch(self, pid: int) -> None:
        """A job was spawned (called in its launch thread)."""
        self._say(b"+%d\n" % pid)

    def forget(self, pid: int) -> None:
        """A job was reaped (called in its launch thread)."""
        self._say(b"-%d\n" % pid)

    def close(self, timeout_s: float = 5.0) -> None:
        """The worker is done: the guardian ends what is still listed, and exits."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _end(groups: set[int]) -> None:
    """SIGTERM each job's process group, then SIGKILL what is left after GRACE_S."""
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while groups and time.monotonic() < deadline:
        groups = {group for group in groups if _alive(group)}
        time.sleep(POLL_S)
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def main() -> None:
    """The guardian process: read job lines until the worker's end closes."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    jobs: set[int] = set()
    rest = b""
    while chunk := os.read(0, READ_SIZE):
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            sign, pid = line[:1], line[1:]
            if not pid.isdigit():
                continue
            if sign == b"+":
                jobs.add(int(pid))
            elif sign == b"-":
                jobs.discard(int(pid))
        time.sleep(BATCH_S)  # let lines gather: one wake-up per batch, not one per line
    if jobs:
        print(f"jobstream guardian: the worker is gone; ending {len(jobs)} job(s)", file=sys.stderr)
        _end(jobs)


if __name__ == "__main__":
    main()
