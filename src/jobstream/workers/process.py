"""Run a command as a real process without blocking the event loop.

The process is spawned (glibc's ``posix_spawn``, or ``subprocess`` for another directory) and
waited for (``waitid``, which leaves it to be reaped and releases the GIL) in a thread,
then reaped with ``os.wait4`` so every job gets its own rusage: peak memory (ru_maxrss)
and CPU time; :mod:`jobstream.workers.slots` runs jobs (and recovery scripts) this way.
Each job leads its own session (process group), so a cancellation terminates the command
together with everything it started.

A command made only of plain words is executed directly, as ``bash -c`` would after
parsing it: starting bash costs about as much as starting the job itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
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
    """How a process ended: Python's convention, negative return code = killed by signal;
    ``wrote_output``: its stdout or stderr is not empty."""

    return_code: int
    exec_time_s: float
    peak_memory_mib: float
    cpu_time_s: float
    wrote_output: bool = False


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
    return list(_argv(command, invocation_script))


@functools.lru_cache(maxsize=1024)
def _argv(command: str, invocation_script: str | None) -> tuple[str, ...]:
    """Remembered: campaigns repeat commands, and splitting one is not free."""
    line = f"{invocation_script} {command}" if invocation_script else command
    words = line.split()
    if words and PLAIN.fullmatch(line) and "=" not in words[0] and words[0] not in SHELL_WORDS:
        return tuple(shlex.split(line))
    return (_shell(), "-c", line)


@functools.cache
def _shell() -> str:
    return shutil.which("bash") or "/bin/sh"


class Spawned:
    """A process started with ``posix_spawn``: its pid, its return code once reaped."""

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

    In the worker's own directory, with glibc's ``posix_spawn`` (:class:`_Spawner`): one
    C call without the GIL, where ``Popen`` runs a lot of Python and gives the GIL up
    at each system call on the way (next to a busy event loop each is a wait). It cannot
    change directory, so jobs elsewhere, and every job where glibc is not the C library,
    start through ``subprocess``. Either way: a new session, stdin from /dev/null, the
    output files truncated, SIGPIPE and SIGXFSZ back at their defaults.
    """
    try:
        if _spawner is not None and _sealed and cwd == os.getcwd():
            return Spawned(_spawner.spawn(argv, env, stdout, stderr))
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


class _Spawner:
    """glibc's ``posix_spawn`` through ctypes, which lets the GIL go during the call.

    Python's ``os.posix_spawn`` holds the GIL while the child is made, and the worker's
    event loop stands still meanwhile; here only building argv and the environment
    does. The attributes (a new session, SIGPIPE and
    SIGXFSZ at their defaults) are made once, the file actions once per scratch pair.
    """

    SETSIGDEF, SETSID = 0x04, 0x80  # glibc's POSIX_SPAWN_* flags
    OPAQUE = 1024  # bytes: more than glibc's attribute, file-action and sigset structs

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.gnu_get_libc_version  # noqa: B018 (not glibc: AttributeError)
        self.attr = ctypes.create_string_buffer(self.OPAQUE)
        signals = ctypes.create_string_buffer(self.OPAQUE)
        _check(self.libc.posix_spawnattr_init(self.attr))
        self.libc.sigemptyset(signals)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            self.libc.sigaddset(signals, sig)
        _check(self.libc.posix_spawnattr_setsigdefault(self.attr, signals))
        flags = ctypes.c_short(self.SETSIGDEF | self.SETSID)
        _check(self.libc.posix_spawnattr_setflags(self.attr, flags))
        self.actions: dict[tuple[Path, Path], ctypes.Array[ctypes.c_char]] = {}
        self.lock = threading.Lock()  # launch threads share the cached file actions

    def spawn(self, argv: list[str], env: Mapping[str, str], stdout: Path, stderr: Path) -> int:
        """The child's pid; the program is looked up in the job's PATH."""
        try:
            program = _executable(argv[0], env.get("PATH", os.defpath))
            c_argv = (ctypes.c_char_p * (len(argv) + 1))(*map(os.fsencode, argv), None)
            pairs = [os.fsencode(f"{key}={value}") for key, value in env.items()]
            c_env = (ctypes.c_char_p * (len(pairs) + 1))(*pairs, None)
            pid = ctypes.c_int()
            actions, cached = self._file_actions(stdout, stderr)
            try:
                failed = self.libc.posix_spawn(
                    ctypes.byref(pid), os.fsencode(program), actions, self.attr, c_argv, c_env
                )
            finally:
                if not cached:
                    self.libc.posix_spawn_file_actions_destroy(actions)
            _check(failed, argv[0])
            return pid.value
        except OSError:
            _executable.cache_clear()  # the program may have moved: look again next time
            raise

    def _file_actions(self, stdout: Path, stderr: Path) -> tuple[ctypes.Array[ctypes.c_char], bool]:
        """The file actions for these outputs, and whether they are kept for the next
        spawn (scratch pairs are reused; recovery scripts' files are not)."""
        with self.lock:
            found = self.actions.get((stdout, stderr))
            if found is not None:
                return found, True
            found = ctypes.create_string_buffer(self.OPAQUE)
            _check(self.libc.posix_spawn_file_actions_init(found))
            opens: list[tuple[int, str | Path, int]] = [
                (0, os.devnull, os.O_RDONLY),
                (1, stdout, _OUTPUT_FLAGS),
                (2, stderr, _OUTPUT_FLAGS),
            ]
            for fd, path, flags in opens:
                name = os.fsencode(path)
                _check(self.libc.posix_spawn_file_actions_addopen(found, fd, name, flags, 0o666))
            cached = len(self.actions) < MAX_CACHED_ACTIONS
            if cached:
                self.actions[(stdout, stderr)] = found
            return found, cached


def _check(failed: int, name: str | None = None) -> None:
    """Raise the error number a posix_spawn* function returned."""
    if failed:
        raise OSError(failed, os.strerror(failed), name)


_OUTPUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
MAX_CACHED_ACTIONS = 256


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


try:
    _spawner: _Spawner | None = _Spawner()
except (OSError, AttributeError):  # not glibc: every job goes through subprocess
    _spawner = None


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
