"""Publish WORK messages for ready jobs, on their pool's hardware-class subject.

A class consumer is created the first time a class is dispatched; workers find it by
listing consumers. The WORK message id is ``<wf>.<job>.<ready_seq>`` so repeating a
dispatch (after a restart) inside the dedup window is a no-op, and
:meth:`Dispatcher.skip_already_queued` drops re-dispatches whose message is still queued.
"""

from __future__ import annotations

import json

import msgspec
from nats.js import JetStreamContext, api

from jobstream.model import WorkItem
from jobstream.scheduler.state import DispatchIntent, Intent, SchedulerState
from jobstream.streams.pipeline import Pipeline
from jobstream.streams.setup import ensure_class_consumer
from jobstream.streams.subjects import ALL_WORK, WORK_STREAM, class_subject, direct_get_subject

_encoder = msgspec.json.Encoder()
QUEUED_BATCH = 1000
DIRECT_GET_TIMEOUT_S = 5.0
STATUS_HEADER = "Status"
SEQUENCE_HEADER = "Nats-Sequence"  # of a direct get's message


def work_msg_id(wf: str, job: int, ready_seq: int) -> str:
    """Dedup id of one dispatch."""
    return f"{wf}.{job}.{ready_seq}"


def dispatch_of(msg_id: str) -> tuple[str, int, int] | None:
    """The (wf, job, ready_seq) a WORK message id names (:func:`work_msg_id`)."""
    wf, _, rest = msg_id.partition(".")
    job, _, ready_seq = rest.partition(".")
    if not (job.isdigit() and ready_seq.isdigit()):
        return None
    return wf, int(job), int(ready_seq)


class Dispatcher:
    """Owns the set of class consumers this scheduler has made sure of."""

    def __init__(self, js: JetStreamContext, pipeline: Pipeline, lease_s: float) -> None:
        self.js = js
        self.pipeline = pipeline
        self.lease_s = lease_s
        self.known_classes: set[tuple[str, str]] = set()

    async def dispatch(self, state: SchedulerState, intents: list[DispatchIntent]) -> None:
        """One WORK message per intent, highest priority first, pipelined."""
        items = []
        for intent in intents:
            track = state.workflows[intent.wf]
            job = track.jobs[intent.job]
            items.append(
                WorkItem(
                    wf=intent.wf,
                    job=intent.job,
                    ready_seq=intent.ready_seq,
                    attempts_before=job.attempt,
                    retries=track.retries.get(intent.job, {}),
                    workdir=track.workdir,
                    spec=track.spec(intent.job),
                )
            )
        items.sort(key=lambda item: -item.spec.priority)
        futures = []
        for item in items:
            key = (item.spec.pool, item.spec.resources.hardware_class())
            if key not in self.known_classes:
                await ensure_class_consumer(self.js, *key, self.lease_s)
                self.known_classes.add(key)
            futures.append(
                await self.pipeline.publish(
                    class_subject(*key),
                    _encoder.encode(item),
                    {api.Header.MSG_ID: work_msg_id(item.wf, item.job, item.ready_seq)},
                )
            )
        for future in futures:
            await self.pipeline.ack(future)

    async def skip_already_queued(self, intents: list[Intent]) -> list[Intent]:
        """Drop dispatch intents whose WORK message is still in the queue (after a restart)."""
        if not any(isinstance(i, DispatchIntent) for i in intents):
            return intents
        queued = await self._queued()
        return [
            i
            for i in intents
            if not (isinstance(i, DispatchIntent) and (i.wf, i.job, i.ready_seq) in queued)
        ]

    async def _queued(self) -> set[tuple[str, int, int]]:
        """(wf, job, ready_seq) of every message still in WORK (queued or in flight):
        their message ids, read in batches of direct gets (one round trip per
        QUEUED_BATCH messages, where one per message took seconds for 10,000)."""
        info = await self.js.stream_info(WORK_STREAM)
        queued: set[tuple[str, int, int]] = set()
        seq = info.state.first_seq
        while info.state.messages and seq <= info.state.last_seq:
            found, seq = await self._queued_batch(seq)
            if not found:
                break
            queued.update(found)
        return queued

    async def _queued_batch(self, seq: int) -> tuple[list[tuple[str, int, int]], int]:
        """The dispatches of up to QUEUED_BATCH messages from ``seq``; the sequence after."""
        nc = self.pipeline.nc  # a raw request: nats-py has no batched direct get
        inbox = nc.new_inbox()
        answers = await nc.subscribe(inbox)
        try:
            request = {"seq": seq, "batch": QUEUED_BATCH, "next_by_subj": ALL_WORK}
            await nc.publish(
                direct_get_subject(WORK_STREAM), json.dumps(request).encode(), reply=inbox
            )
            found: list[tuple[str, int, int]] = []
            after = seq
            while True:
                msg = await answers.next_msg(timeout=DIRECT_GET_TIMEOUT_S)
                headers = msg.headers or {}
                if headers.get(STATUS_HEADER):  # 204: the batch ended; 404: nothing more
                    return found, after
                after = int(headers[SEQUENCE_HEADER]) + 1
                msg_id = headers.get(api.Header.MSG_ID, "")
                if (dispatch := dispatch_of(msg_id)) is not None:
                    found.append(dispatch)
        finally:
            await answers.unsubscribe()
