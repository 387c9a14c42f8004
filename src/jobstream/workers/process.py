"""Run a command as a real process without blocking the event loop.

The process is spawned (``os.posix_spawn``, or ``subprocess`` for another directory) and
waited for (``waitid``, which leaves it to be reaped and releases the GIL) in a thread,
then reaped with ``os.wait4`` so every job gets its own rusage: peak memory (ru_maxrss)
and CPU time; :mod:`jobstream.workers.slots` runs jobs (and recovery scripts) this way.
Each job leads its own session (process group), so a cancellation terminates the command
together with everything it started.

A command made only of plain words is executed directly, as ``bash -c`` would after
parsing it: starting bash costs about as much as starting the job itself (``true`` runs
~2,800/s directly and ~1,500/s through bash on two cores here).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec

KILL_REAP_S = 2.0
SPAWN_ERROR_CODE = 127
TAIL_LINES = 10
TAIL_BYTES = 2048

# Words the shell gives a meaning of its own (keywords, builtins without a program of the
# same name, or with one that behaves differently, like /usr/bin/time). Keywords spelled
# with other characters ("[[", "{", "!") never pass PLAIN.
SHELL_WORDS = frozenset(
    (
        *("case", "coproc", "for", "function", "if", "select", "until", "while", "time", "."),
        *("alias", "builtin", "cd", "command", "eval", "exec", "exit", "export", "hash"),
        *("read", "return", "set", "shift", "source", "trap", "type", "ulimit", "umask"),
        *("unset", "wait"),
    )
)
PLAIN = re.compile(r"[A-Za-z0-9_./:,+@%= \t-]+")


class Outcome(msgspec.Struct, frozen=True):
    """How a process ended: Python's convention, negative return code = killed by signal."""

    return_code: int
    exec_time_s: float
    peak_memory_mib: float
    cpu_time_s: float


class Output(msgspec.Struct, frozen=True):
    """What a finished job wrote: the non-empty files' contents and stderr's last lines."""

    stdout: bytes
    stderr: bytes
    stderr_tail: str


def shell_command(command: str, invocation_script: str | None) -> list[str]:
    """argv for a job: torc runs ``<invocation_script> <command>`` through a shell.

    Plain words (no quoting, expansion, redirection, assignment or shell keyword) are run
    directly; anything else goes to bash, which behaves identically for plain words.
    """
    line = f"{invocation_script} {command}" if invocation_script else command
    words = line.split()
    if words and PLAIN.fullmatch(line) and "=" not in words[0] and words[0] not in SHELL_WORDS:
        return shlex.split(line)
    return [_shell(), "-c", line]


@functools.cache
def _shell() -> str:
    return shutil.which("bash") or "/bin/sh"


class Spawned:
    """A process started with ``os.posix_spawn``: its pid, its return code once reaped."""

    __slots__ = ("pid", "returncode")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None


Child = subprocess.Popen[bytes] | Spawned
_sealed = False  # inherited descriptors are close-on-exec (see seal_inherited_fds)


def seal_inherited_fds() -> None:
    """Make every descriptor above stderr that this process inherited close-on-exec.

    Python opens its own that way, and so does DuckDB; what is left are descriptors the
    worker's launcher (a shell, Slurm) passed down. ``Popen`` closes them in each child
    (``close_fds``); ``posix_spawn`` does not, so it is used only once they are sealed.
    """
    global _sealed
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: keep subprocess
        return
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)
    _sealed = True


def spawn(argv: list[str], cwd: str, env: Mapping[str, str], stdout: Path, stderr: Path) -> Child:
    """Start a job (blocking: call it in a thread).

    In the worker's own directory, with ``os.posix_spawn``: one C call that holds no GIL,
    where ``Popen`` runs ~200 µs of Python and gives the GIL up at each system call on the
    way (next to a busy event loop each is a wait). It cannot change directory, so jobs
    elsewhere start through ``subprocess``. Either way: a new session, stdin from
    /dev/null, the output files truncated, SIGPIPE and SIGXFSZ back at their defaults.
    """
    try:
        if _sealed and cwd == os.getcwd():
            return Spawned(_posix_spawn(argv, env, stdout, stderr))
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
    except OSError as exc:  # same message and code as the shell's for a missing program
        stderr.write_bytes(f"jobstream: cannot start {argv[0]!r} in {cwd}: {exc}\n".encode())
        raise


def _posix_spawn(argv: list[str], env: Mapping[str, str], stdout: Path, stderr: Path) -> int:
    path = env.get("PATH", os.defpath)
    try:
        program = _executable(argv[0], path)
        return os.posix_spawn(
            program,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(stdout), _OUTPUT_FLAGS, 0o666),
                (os.POSIX_SPAWN_OPEN, 2, str(stderr), _OUTPUT_FLAGS, 0o666),
            ],
            setsid=True,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
    except OSError:
        _executable.cache_clear()  # the program may have moved: look again next time
        raise


_OUTPUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


@functools.lru_cache(maxsize=1024)
def _executable(name: str, path: str) -> str:
    """The program, found as ``Popen`` finds it: a name with a slash is a path, any other
    is looked up in the job's own PATH (remembered: a lookup is a stat per folder)."""
    if "/" in name:
        return name
    found = shutil.which(name, path=path)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    return found


def reap(process: Child) -> tuple[int, float, float]:
    """(return code, peak MiB, CPU s) of a process, waiting for it if it still runs.

    Its launch thread is the only reaper (see :mod:`jobstream.workers.slots`).
    """
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def wait_until_exited(pid: int) -> None:
    """Block (without the GIL) until the process has exited, leaving it to be reaped."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def spawn_failure(began: float) -> Outcome:
    """The outcome recorded for a command that could not be started at all."""
    return Outcome(SPAWN_ERROR_CODE, time.monotonic() - began, 0.0, 0.0)


def read_output(stdout: Path | None, stderr: Path | None) -> Output:
    """The contents of a finished job's kept files (blocking: run it in a thread)."""
    out = stdout.read_bytes() if stdout else b""
    err = stderr.read_bytes() if stderr else b""
    return Output(out, err, tail_of(err))


def tail_of(data: bytes, max_lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> str:
    """The last lines of a log, bounded, for events that must stay small."""
    text = data[-max_bytes:].decode(errors="replace")
    return "\n".join(text.strip().splitlines()[-max_lines:])
