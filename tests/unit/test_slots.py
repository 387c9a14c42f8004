"""Room and launch threads (``workers/slots.py``) with real processes: a freed slot
starts the next queued job itself, in queue order; cancels, stops and kept room."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio

from jobstream.model import Resources
from jobstream.workers.capacity import Capacity
from jobstream.workers.slots import Launch, LaunchState, Slots

ONE = Resources(num_cpus=1, memory_mib=10)


class Harness:
    """Slots attached to the running loop, counting the threads it was asked to start."""

    def __init__(self, slots: Slots, tg: anyio.abc.TaskGroup) -> None:
        self.slots, self.tg = slots, tg
        self.threads_started = 0
        self.room_freed = 0
        slots.attach(asyncio.get_running_loop().call_soon_threadsafe, self.start, self.on_room)

    def start(self, launch: Launch) -> None:
        self.threads_started += 1
        self.tg.start_soon(anyio.to_thread.run_sync, self.slots.run, launch)

    def on_room(self) -> None:
        self.room_freed += 1


@contextlib.asynccontextmanager
async def one_slot(time_left_s: float = math.inf) -> AsyncIterator[Harness]:
    """Slots of one CPU (a task group per test: the threads end with it)."""
    slots = Slots(
        Capacity(Resources(num_cpus=1, memory_mib=100)),
        gpu_env=False,
        deadline=time.monotonic() + time_left_s,
    )
    async with anyio.create_task_group() as tg:
        yield Harness(slots, tg)


def launch(
    tmp_path: Path,
    name: str,
    *argv: str,
    keeps: Callable[[int], bool] | None = None,
    need: Resources = ONE,
) -> Launch:
    return Launch(
        need=need,
        argv=list(argv),
        cwd=str(tmp_path),
        env={"PATH": "/usr/bin:/bin"},
        stdout=tmp_path / f"{name}.out",
        stderr=tmp_path / f"{name}.err",
        keeps_room=keeps or (lambda code: False),
    )


async def test_freed_room_starts_the_next_queued_job_in_the_same_thread(tmp_path: Path) -> None:
    async with one_slot() as harness:
        launches = [launch(tmp_path, str(n), "sh", "-c", f"echo {n}") for n in range(5)]
        for each in launches:
            harness.slots.queue(each, None)
        with anyio.fail_after(20):
            for each in launches:
                await each.ended.wait()
        assert [each.outcome.return_code for each in launches if each.outcome] == [0] * 5
        assert [(tmp_path / f"{n}.out").read_text() for n in range(5)] == [
            f"{n}\n" for n in range(5)
        ]
        starts = [each.began for each in launches]
        assert starts == sorted(starts)  # first come, first served
        assert harness.threads_started == 1  # each ended process started the next one itself
        assert harness.slots.capacity.idle and not harness.slots.waiting


async def test_room_freed_while_a_job_was_being_claimed_is_granted(tmp_path: Path) -> None:
    """Regression: the last running job ended while the next one was being claimed (not
    yet queued for room); nothing released room again, so it waited forever."""
    async with one_slot() as harness:
        running = harness.slots.try_reserve(ONE)
        assert running is not None and harness.slots.try_reserve(ONE) is None  # the slot is busy
        harness.slots.release(running)  # ... and frees up while the next job's claim is in flight
        late = launch(tmp_path, "late", "true")
        harness.slots.queue(late, None)
        with anyio.fail_after(10):
            await late.ended.wait()
        assert late.outcome is not None and late.outcome.return_code == 0


async def test_a_canceled_job_never_starts(tmp_path: Path) -> None:
    async with one_slot() as harness:
        blocker = launch(tmp_path, "blocker", "sleep", "30")
        waiting = launch(tmp_path, "waiting", "true")
        harness.slots.queue(blocker, None)
        harness.slots.queue(waiting, None)
        with anyio.fail_after(10):
            await blocker.started.wait()
        assert waiting.state is LaunchState.WAITING
        assert harness.slots.withdraw(waiting)  # left the queue without room
        assert waiting.started.is_set() and waiting.state is LaunchState.WITHDRAWN
        with anyio.fail_after(10):
            await harness.slots.stop(blocker, grace_s=5)
        assert blocker.outcome is not None and blocker.outcome.return_code == -signal.SIGTERM
        assert waiting.process is None and harness.slots.capacity.idle


async def test_room_granted_to_a_job_canceled_before_its_spawn_is_freed(tmp_path: Path) -> None:
    async with one_slot() as harness:
        reservation = harness.slots.try_reserve(ONE)
        granted = launch(tmp_path, "granted", "true")
        granted.state = LaunchState.REVOKED  # what withdraw does to a launch that already has room
        harness.slots.queue(granted, reservation)
        with anyio.fail_after(10):
            await granted.ended.wait()
        assert granted.process is None and granted.outcome is None
        assert harness.slots.capacity.idle


async def failed_keeping_its_room(harness: Harness, tmp_path: Path) -> tuple[Launch, Launch]:
    """A job that failed with a code whose retry runs a recovery script, and a job queued
    after it for the same room."""
    failing = launch(tmp_path, "failing", "sh", "-c", "exit 3", keeps=lambda code: code == 3)
    after = launch(tmp_path, "after", "true")
    harness.slots.queue(failing, None)
    harness.slots.queue(after, None)
    with anyio.fail_after(10):
        await failing.ended.wait()
    return failing, after


async def test_room_kept_for_a_recovery_script_until_released(tmp_path: Path) -> None:
    async with one_slot() as harness:
        failing, after = await failed_keeping_its_room(harness, tmp_path)
        await anyio.sleep(0.2)
        assert failing.room_held and not after.started.is_set()  # the recovery runs in the room
        harness.slots.done_with(failing)
        with anyio.fail_after(10):
            await after.ended.wait()
        assert after.outcome is not None and after.outcome.return_code == 0


async def test_a_command_that_cannot_start_ends_with_127_and_frees_its_room(tmp_path: Path) -> None:
    async with one_slot() as harness:
        missing = launch(tmp_path, "missing", "/no/such/program")
        harness.slots.queue(missing, None)
        with anyio.fail_after(10):
            await missing.ended.wait()
        assert missing.process is None and missing.outcome is not None
        assert missing.outcome.return_code == 127
        assert "cannot start" in (tmp_path / "missing.err").read_text()
        assert harness.slots.capacity.idle  # freed before the end was announced


async def test_a_recovery_script_runs_in_the_room_its_job_kept(tmp_path: Path) -> None:
    async with one_slot() as harness:
        failing, after = await failed_keeping_its_room(harness, tmp_path)
        recovery = launch(tmp_path, "recovery", "sleep", "30")
        harness.slots.hand_over(failing, recovery)
        with anyio.fail_after(10):
            await recovery.started.wait()
        assert not after.started.is_set()  # the recovery holds the room
        assert await harness.slots.run_within(recovery, 0.2, grace_s=5)  # past its limit
        assert recovery.outcome is not None and recovery.outcome.return_code == -signal.SIGTERM
        with anyio.fail_after(10):
            await after.ended.wait()  # its end passed the room on
        assert harness.slots.capacity.idle


async def test_a_job_whose_runtime_outlasts_the_walltime_is_never_started(tmp_path: Path) -> None:
    """The worker has 30 s left: a 10 s job starts, a 60 s one does not (it is marked
    too late, its room freed for the next), even though there is room for it."""
    long_job = Resources(num_cpus=1, memory_mib=10, runtime_s=60)
    short_job = Resources(num_cpus=1, memory_mib=10, runtime_s=10)
    async with one_slot(time_left_s=30) as harness:
        slots = harness.slots
        assert slots.fits_time_left(short_job) and not slots.fits_time_left(long_job)
        late = launch(tmp_path, "late", "sh", "-c", "echo ran > late.ran", need=long_job)
        soon = launch(tmp_path, "soon", "true", need=short_job)
        slots.queue(late, None)
        slots.queue(soon, None)
        with anyio.fail_after(20):
            await late.ended.wait()
            await soon.ended.wait()
        assert late.too_late and late.process is None and late.outcome is None
        assert not (tmp_path / "late.ran").exists()
        assert soon.outcome is not None and soon.outcome.return_code == 0 and not soon.too_late
        assert slots.capacity.idle and not slots.waiting
