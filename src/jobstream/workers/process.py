"""Run one job's command as a real process, off the event loop.

The process is spawned (vfork/exec via subprocess) and reaped with ``os.wait4`` in worker
threads, so the event loop never blocks on fork and every job gets its own rusage: peak
memory (ru_maxrss) and CPU time. Each job leads its own session (process group), so a
cancellation terminates the command together with everything it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import anyio
import msgspec

TERM_GRACE_S = 5.0
KILL_REAP_S = 2.0
SPAWN_ERROR_CODE = 127


class Outcome(msgspec.Struct, frozen=True):
    """How a process ended: Python's convention, negative return code = killed by signal."""

    return_code: int
    exec_time_s: float
    peak_memory_mib: float
    cpu_time_s: float


def shell_command(command: str, invocation_script: str | None) -> list[str]:
    """argv for a job: torc runs ``<invocation_script> <command>`` through a shell."""
    line = f"{invocation_script} {command}" if invocation_script else command
    shell = shutil.which("bash") or "/bin/sh"
    return [shell, "-c", line]


def _spawn(
    argv: list[str], cwd: str, env: Mapping[str, str], stdout: Path, stderr: Path
) -> subprocess.Popen[bytes]:
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )


def _reap(process: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def start_process(
    argv: list[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    stdout: Path,
    stderr: Path,
    limiter: anyio.CapacityLimiter,
) -> subprocess.Popen[bytes] | None:
    """Spawn in a thread; None (with the reason in the stderr file) when it cannot start."""
    try:
        return await anyio.to_thread.run_sync(
            _spawn, argv, cwd, env, stdout, stderr, limiter=limiter
        )
    except OSError as exc:
        await anyio.Path(stderr).write_text(f"jobstream: cannot start {argv!r} in {cwd}: {exc}\n")
        return None


async def wait_process(
    process: subprocess.Popen[bytes],
    began: float,
    limiter: anyio.CapacityLimiter,
    grace_s: float = TERM_GRACE_S,
) -> Outcome:
    """Wait for the process to end. If cancelled, terminate its process group first."""
    try:
        code, peak_mib, cpu_s = await anyio.to_thread.run_sync(
            _reap, process, limiter=limiter, abandon_on_cancel=True
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await terminate(process, grace_s)
        raise
    return Outcome(code, time.monotonic() - began, peak_mib, cpu_s)


def spawn_failure(began: float) -> Outcome:
    """The outcome recorded for a command that could not be started at all."""
    return Outcome(SPAWN_ERROR_CODE, time.monotonic() - began, 0.0, 0.0)


async def terminate(process: subprocess.Popen[bytes], grace_s: float = TERM_GRACE_S) -> None:
    """SIGTERM the job's process group, SIGKILL it if it is still there after ``grace_s``."""
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    # The reaper is an abandoned thread (cancellation), so there is nothing to await.
    while process.returncode is None and time.monotonic() < deadline:  # noqa: ASYNC110
        await anyio.sleep(0.05)
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_REAP_S
        while process.returncode is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await anyio.sleep(0.02)


async def wait_within(
    process: subprocess.Popen[bytes],
    began: float,
    limit_s: float,
    limiter: anyio.CapacityLimiter,
    grace_s: float = TERM_GRACE_S,
) -> tuple[Outcome, bool]:
    """Wait at most ``limit_s`` (the job's runtime); past it, SIGTERM, then SIGKILL after
    ``grace_s``. Returns the outcome and whether the job timed out."""
    with anyio.move_on_after(limit_s) as limit:
        return await wait_process(process, began, limiter, grace_s), False
    assert limit.cancelled_caught
    code = process.returncode if process.returncode is not None else -int(signal.SIGKILL)
    return Outcome(code, time.monotonic() - began, 0.0, 0.0), True


def tail_text(path: Path, max_lines: int = 10, max_bytes: int = 2048) -> str:
    """The last lines of a (log) file, bounded, for events that must stay small."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - max_bytes))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-max_lines:])
