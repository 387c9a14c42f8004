"""Publish WORK messages for ready jobs, on their pool's hardware-class subject.

A class consumer is created the first time a class is dispatched; workers find it by
listing consumers. The WORK message id is ``<wf>.<job>.<ready_seq>`` so repeating a
dispatch (after a restart) inside the dedup window is a no-op, and
:meth:`Dispatcher.skip_already_queued` drops re-dispatches whose message is still queued.
"""

from __future__ import annotations

import msgspec
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from jobstream.model import WorkItem
from jobstream.scheduler.state import DispatchIntent, Intent, SchedulerState
from jobstream.streams.pipeline import Pipeline
from jobstream.streams.setup import ensure_class_consumer
from jobstream.streams.subjects import ALL_WORK, WORK_STREAM, class_subject

_encoder = msgspec.json.Encoder()
_item_decoder = msgspec.json.Decoder(WorkItem)


def work_msg_id(wf: str, job: int, ready_seq: int) -> str:
    """Dedup id of one dispatch."""
    return f"{wf}.{job}.{ready_seq}"


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
        """(wf, job, ready_seq) of every message still in WORK (queued or in flight)."""
        info = await self.js.stream_info(WORK_STREAM)
        queued: set[tuple[str, int, int]] = set()
        seq = info.state.first_seq
        while info.state.messages and seq <= info.state.last_seq:
            try:
                raw = await self.js.get_msg(WORK_STREAM, seq=seq, subject=ALL_WORK, next=True)
            except NotFoundError:
                break
            assert raw.seq is not None and raw.data is not None
            item = _item_decoder.decode(raw.data)
            queued.add((item.wf, item.job, item.ready_seq))
            seq = raw.seq + 1
        return queued
