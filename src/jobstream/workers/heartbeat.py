"""The worker's heartbeat: its entry in the WORKERS bucket, put every ``HEARTBEAT_S``.

Heartbeats are not events: they say how a worker is now (load, jobs running), which no
fold needs and which a log would keep forever, at a message per worker every few
seconds. One key per worker, history 1, is the whole of it; ``jobstream workers`` reads
the bucket, and an entry that stops being renewed tells of a worker that died. The
lifecycle stays in the log (WorkerStarted, WorkerStopped, WorkerLost).

One put per interval, whatever the number of jobs: nothing here is on a job's path.
A clean stop puts a last entry with state ``stopped`` (kept, and listed by
``jobstream workers --all``, until the bucket's max age removes it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import anyio
import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from jobstream.model import JobState, RunningJob, WorkerHeartbeat
from jobstream.streams.setup import ensure_workers
from jobstream.workers.attempt import Attempt

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0
_encoder = msgspec.json.Encoder()


def running_jobs(runs: Iterable[Attempt], now: float, clock: float) -> tuple[RunningJob, ...]:
    """The jobs whose processes run, oldest first; ``now`` is the wall clock and
    ``clock`` the monotonic one at the same moment (a launch's start is monotonic)."""
    found = [
        RunningJob(
            wf=run.item.wf,
            job=run.item.job,
            attempt=run.job.attempt,
            started_at=now - (clock - run.launch.began),
        )
        for run in runs
        if run.job.state is JobState.RUNNING and run.launch is not None
    ]
    return tuple(sorted(found, key=lambda job: job.started_at))


class Heartbeats:
    """Puts ``entry()`` under the worker's id: every ``HEARTBEAT_S``, at once when
    nudged (its state changed), and a last time on a clean stop."""

    def __init__(
        self, js: JetStreamContext, replicas: int, entry: Callable[[], WorkerHeartbeat]
    ) -> None:
        self.js = js
        self.replicas = replicas
        self.entry = entry
        self.kv: KeyValue | None = None
        self.wakeup = anyio.Event()
        self.failing = False  # a failed put was logged; the next success is too

    async def run(self) -> None:
        """Until cancelled. Without the bucket (a server older than this worker, which
        a compute identity may not add it to) there are no heartbeats, and the worker
        works on."""
        try:
            self.kv = await ensure_workers(self.js, self.replicas)
        except Exception as exc:
            log.warning("no heartbeats: the WORKERS bucket is missing (%s)", exc)
            return
        while True:
            await self.put()
            with anyio.move_on_after(HEARTBEAT_S):
                await self.wakeup.wait()
            self.wakeup = anyio.Event()

    def nudge(self) -> None:
        self.wakeup.set()

    async def put(self) -> None:
        """Put the entry as it is now; a failure (server away) is logged once."""
        if self.kv is None:
            return
        entry = self.entry()
        try:
            await self.kv.put(entry.id, _encoder.encode(entry))
        except Exception as exc:
            if not self.failing:
                log.warning("heartbeat not stored (%s); trying again every %g s", exc, HEARTBEAT_S)
            self.failing = True
            return
        if self.failing:
            log.info("heartbeats stored again")
            self.failing = False
