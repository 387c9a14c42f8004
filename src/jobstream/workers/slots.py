"""Room for jobs, and the threads that start them: a freed slot starts its next job itself.

With short jobs, the time between one process ending and the next one starting set the
rate: the event loop had to notice the exit, free the room, wake the next job's task and
hand its spawn to a thread, each a turn of a loop that is busy with every other job's
events. Here a thread spawns a process,
waits for it (``waitid``, without the GIL), reaps it, frees its room and at once spawns
the next claimed job that fits, all without the event loop. The loop only hears about it
(started, ended) to append the job's events.

Room is granted first come, first served, to claimed jobs in the order they were queued.
A job whose runtime does not fit the time the worker has left (its walltime: the end of
its Slurm allocation) is never started, even with room: it is handed back
(:attr:`Launch.too_late`). Everything shared by the threads and the loop (the capacity,
the queue, each launch's state) changes under one lock; the launch's events are set on
the loop.
"""

from __future__ import annotations

import enum
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from jobstream.model import Resources
from jobstream.workers.capacity import Capacity, Reservation
from jobstream.workers.guardian import Guardian
from jobstream.workers.outputs import written
from jobstream.workers.process import (
    KILL_REAP_S,
    Child,
    Outcome,
    reap,
    signal_group,
    spawn,
    spawn_failure,
    wait_until_exited,
)


class LaunchState(enum.Enum):
    """A launch's life; every change happens under the slots' lock.

    WAITING -> GRANTED -> RUNNING -> EXITED -> ENDED | KEEPING_ROOM -> ENDED
    WAITING -> WITHDRAWN;  GRANTED -> REVOKED -> ENDED (never started)
    GRANTED -> ENDED, too_late (its runtime no longer fits the worker's walltime)
    RUNNING -> OVERTIME -> EXITED (stopped for its runtime: its room is never kept)
    any state before ENDED -> ABANDONED -> ENDED (the job's task is gone: nothing starts
    or signals it any more, and its room is freed when it ends)
    """

    WAITING = "waiting"  # queued for room
    WITHDRAWN = "withdrawn"  # left the queue without room (its job was canceled)
    GRANTED = "granted"  # room reserved, not spawned yet
    REVOKED = "revoked"  # granted, then canceled: it will not start
    RUNNING = "running"  # spawned (or failed to spawn), not exited
    OVERTIME = "overtime"  # past its runtime, being stopped
    EXITED = "exited"  # exited, not reaped: its pid may be reused, no more signals
    KEEPING_ROOM = "keeping_room"  # reaped; its room waits for the job's recovery script
    ABANDONED = "abandoned"  # the job's task gave it up before it ended
    ENDED = "ended"  # reaped (or never started), its room freed


SIGNALLED = frozenset({LaunchState.RUNNING, LaunchState.OVERTIME})


@dataclass(eq=False)
class Launch:
    """One job's process, from the moment it waits for room until it is reaped.

    ``keeps_room(return_code)`` says whether the room stays held after the process ends
    (a retry's recovery script runs in it); the job's task then releases it.
    """

    need: Resources
    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdout: Path
    stderr: Path
    keeps_room: Callable[[int], bool]
    within_walltime: bool = True  # started only if its runtime fits the time left
    state: LaunchState = LaunchState.WAITING
    reservation: Reservation | None = None
    process: Child | None = None
    began: float = 0.0
    outcome: Outcome | None = None  # None: it never started
    too_late: bool = False  # not started: its runtime did not fit the worker's time left
    started: anyio.Event = field(default_factory=anyio.Event)  # left the queue
    ended: anyio.Event = field(default_factory=anyio.Event)

    @property
    def room_held(self) -> bool:
        """Ended, and the job's task releases the room (:meth:`Slots.done_with`)."""
        return self.state is LaunchState.KEEPING_ROOM


class Slots:
    """The worker's capacity, the queue of claimed jobs waiting for it, and the threads
    that run them. ``attach`` must be called on the event loop before jobs are queued."""

    def __init__(self, capacity: Capacity, gpu_env: bool, deadline: float = math.inf) -> None:
        self.capacity = capacity
        self.gpu_env = gpu_env  # jobs see their GPUs as CUDA_VISIBLE_DEVICES
        self.deadline = deadline  # time.monotonic() at the worker's walltime
        self.lock = threading.Lock()
        self.waiting: deque[Launch] = deque()
        self._call_soon: Callable[..., object] = _unattached
        self._start_thread: Callable[[Launch], None] = _unattached
        self._on_room: Callable[[], None] = _nothing
        self.guardian: Guardian | None = None  # told of every process (see guardian.py)

    def attach(
        self,
        call_soon_threadsafe: Callable[..., object],
        start_thread: Callable[[Launch], None],
        on_room: Callable[[], None],
        guardian: Guardian | None = None,
    ) -> None:
        """``start_thread(launch)`` runs :meth:`run` in a thread (called on the loop);
        ``on_room()`` is called on the loop whenever room was freed; ``guardian`` ends
        the processes if the worker dies."""
        self._call_soon = call_soon_threadsafe
        self._start_thread = start_thread
        self._on_room = on_room
        self.guardian = guardian

    def time_left(self) -> float:
        """Seconds until the worker's walltime."""
        return self.deadline - time.monotonic()

    def fits_time_left(self, need: Resources) -> bool:
        """Whether a job of this class started now ends before the worker's walltime."""
        return need.runtime_s <= self.time_left()

    def try_reserve(self, need: Resources) -> Reservation | None:
        """Room now, unless claimed jobs already wait for it (they go first)."""
        with self.lock:
            if self.waiting or not self.capacity.fits_now(need):
                return None
            return self.capacity.reserve(need)

    def queue(self, launch: Launch, reservation: Reservation | None) -> None:
        """Start the launch in the room reserved for it, or queue it for room (on the loop)."""
        with self.lock:
            if reservation is not None:
                launch.reservation = reservation
                if launch.state is LaunchState.WAITING:
                    launch.state = LaunchState.GRANTED
                granted = [launch]
            else:
                self.waiting.append(launch)
                granted = self._grant()  # room may have been freed during the claim
        for each in granted:
            self._start_thread(each)

    def withdraw(self, launch: Launch, *, revoke: bool = True) -> bool:
        """The job was canceled: True if it left the queue without room (on the loop).
        A launch already granted is marked so that it never starts, unless not ``revoke``
        (a job handed back for want of room starts if room came meanwhile)."""
        with self.lock:
            if launch.state is LaunchState.WAITING:
                self.waiting.remove(launch)
                launch.state = LaunchState.WITHDRAWN
                launch.started.set()
                return True
            if revoke and launch.state is LaunchState.GRANTED:
                launch.state = LaunchState.REVOKED
            return False

    def release(self, reservation: Reservation) -> None:
        """Free room that a job's task holds (on the loop)."""
        with self.lock:
            self.capacity.release(reservation)
            granted = self._grant()
        for each in granted:
            self._start_thread(each)
        self._on_room()

    def done_with(self, launch: Launch) -> None:
        """The job's task is done with the launch (on the loop): room it kept is freed
        now, and room of a process still running is freed when the process ends."""
        with self.lock:
            held = launch.state is LaunchState.KEEPING_ROOM
            if held:
                launch.state = LaunchState.ENDED
            elif launch.state is LaunchState.WAITING:
                self.waiting.remove(launch)
                launch.state = LaunchState.WITHDRAWN
            elif launch.state not in (LaunchState.ENDED, LaunchState.WITHDRAWN):
                launch.state = LaunchState.ABANDONED
        if held:
            assert launch.reservation is not None
            self.release(launch.reservation)

    def hand_over(self, ended: Launch, launch: Launch) -> None:
        """Start ``launch`` in the room an ended launch kept (a retry's recovery script);
        the room is freed, or granted on, when ``launch`` ends (on the loop)."""
        with self.lock:
            assert ended.state is LaunchState.KEEPING_ROOM and ended.reservation is not None
            ended.state = LaunchState.ENDED
            launch.reservation, launch.state = ended.reservation, LaunchState.GRANTED
            launch.within_walltime = False  # part of the job that started: its runtime
        self._start_thread(launch)

    async def run_within(self, launch: Launch, limit_s: float, grace_s: float) -> bool:
        """Wait for a started launch to end, stopping it past ``limit_s``; True if it was
        stopped for that. A cancellation stops it too, before it goes on."""
        try:
            with anyio.move_on_after(limit_s):
                await launch.ended.wait()
            if launch.ended.is_set():
                return False
            if not self._overtime(launch):
                await launch.ended.wait()  # it had exited: it is being reaped
                return False
            await self.stop(launch, grace_s)
            return True
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.stop(launch, grace_s)
            raise

    def _overtime(self, launch: Launch) -> bool:
        """Mark a running launch as past its runtime (before it is signalled for it);
        False if it is not running any more."""
        with self.lock:
            if launch.state is not LaunchState.RUNNING:
                return False
            launch.state = LaunchState.OVERTIME
            return True

    def signal(self, launch: Launch, sig: signal.Signals) -> None:
        """Signal the launch's process group, unless it has exited (or was abandoned)."""
        with self.lock:
            if launch.process is not None and launch.state in SIGNALLED:
                signal_group(launch.process.pid, sig)

    async def stop(self, launch: Launch, grace_s: float) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; wait for the reaping
        (at most ``KILL_REAP_S`` after the SIGKILL: a process stuck in the kernel)."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, KILL_REAP_S)):
            if launch.ended.is_set():
                return
            self.signal(launch, sig)
            with anyio.move_on_after(wait_s):
                await launch.ended.wait()

    def run(self, launch: Launch) -> None:
        """In a thread: run the launch, then each next one that its room goes to."""
        current: Launch | None = launch
        while current is not None:
            granted = self._run_one(current)
            if granted is None:
                return  # the room stays with the job (see Launch.keeps_room)
            self._call_soon(self._on_room)
            current = granted[0] if granted else None
            for other in granted[1:]:
                self._call_soon(self._start_thread, other)

    def _run_one(self, launch: Launch) -> list[Launch] | None:
        """Spawn, wait, reap, free the room; the loop hears when it started and ended.

        Returns the launches the room went to, or None when the job keeps it.
        """
        with self.lock:
            starts = launch.state is LaunchState.GRANTED
            if starts and launch.within_walltime and not self.fits_time_left(launch.need):
                starts, launch.too_late = False, True
            if starts:
                launch.state = LaunchState.RUNNING
            else:  # revoked, abandoned or too late before it started
                launch.state = LaunchState.ENDED
                granted = self._free(launch)
        if not starts:
            self._call_soon(launch.started.set)
            self._call_soon(launch.ended.set)
            return granted
        self._spawn(launch)
        self._call_soon(launch.started.set)
        keeps_room = launch.process is not None and self._reap(launch)
        with self.lock:
            keep = keeps_room and launch.state is LaunchState.EXITED
            launch.state = LaunchState.KEEPING_ROOM if keep else LaunchState.ENDED
            found = None if keep else self._free(launch)
        self._call_soon(launch.ended.set)
        return found

    def _spawn(self, launch: Launch) -> None:
        """Start the launch's process in its room (GPU ids in its environment)."""
        assert launch.reservation is not None
        env = launch.env
        if self.gpu_env:
            env = {**env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, launch.reservation.gpu_ids))}
        launch.began = time.monotonic()
        try:
            process = spawn(launch.argv, launch.cwd, env, launch.stdout, launch.stderr)
        except Exception:  # OSError (the reason is in its stderr file), or a NUL in argv
            launch.outcome = spawn_failure(launch.began)
        else:
            if self.guardian is not None:
                self.guardian.watch(process.pid)
            with self.lock:
                launch.process = process

    def _reap(self, launch: Launch) -> bool:
        """Wait for the process to exit and reap it; whether its room is to be kept."""
        assert launch.process is not None
        wait_until_exited(launch.process.pid)
        with self.lock:
            overtime = launch.state is LaunchState.OVERTIME
            if launch.state in SIGNALLED:
                launch.state = LaunchState.EXITED
        code, peak_mib, cpu_s = reap(launch.process)  # it has exited: no wait
        if self.guardian is not None:
            self.guardian.forget(launch.process.pid)
        launch.outcome = Outcome(
            code,
            time.monotonic() - launch.began,
            peak_mib,
            cpu_s,
            wrote_output=written(launch.stdout, launch.stderr),
        )
        return not overtime and launch.keeps_room(code)

    def _free(self, launch: Launch) -> list[Launch]:
        """Under the lock: release the launch's room and grant it on."""
        assert launch.reservation is not None
        self.capacity.release(launch.reservation)
        return self._grant()

    def _grant(self) -> list[Launch]:
        """Under the lock: hand free room to the waiting launches in order (skipping
        those it does not fit); returns the ones granted."""
        granted: list[Launch] = []
        i = 0
        while i < len(self.waiting) and self.capacity.cpus_used < self.capacity.total.num_cpus:
            launch = self.waiting[i]
            if self.capacity.fits_now(launch.need):
                del self.waiting[i]
                launch.reservation = self.capacity.reserve(launch.need)
                launch.state = LaunchState.GRANTED
                granted.append(launch)
            else:
                i += 1
        return granted


def _unattached(*_: object) -> None:
    raise RuntimeError("Slots.attach was not called")


def _nothing() -> None:
    pass
