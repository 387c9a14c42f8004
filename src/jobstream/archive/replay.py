"""The whole history from a sequence on: the log's messages and the archived ones, merged
in stream order.

Each archive is a run of messages in stream order, and so is the log: a merge of sorted
runs. An archive is opened when the merge reaches its first sequence and let go of when
it is read, so only the archives of workflows that overlapped in time are open at once.
A message both archived and still in the log (its purge did not happen yet) is read
once.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence

from jobstream.archive.store import announcements, archived_rows
from jobstream.events import WorkflowArchived
from jobstream.streams.bulk import read_to_end
from jobstream.streams.connection import Connection
from jobstream.streams.wire import RawBatch, empty_batch

Rows = Callable[[WorkflowArchived], AsyncGenerator[RawBatch, None]]


class Run:
    """The messages of one archive, taken from the front up to a sequence."""

    def __init__(self, rows: AsyncGenerator[RawBatch, None]) -> None:
        self.rows = rows
        self.current = empty_batch()
        self.pos = 0
        self.done = False

    async def take(self, upto: int | None) -> RawBatch:
        """Its next messages of sequence ``upto`` or lower (all of them: None)."""
        taken = empty_batch()
        while not self.done:
            seqs = self.current.seqs
            if self.pos == len(seqs):
                following = await anext(self.rows, None)
                if following is None:
                    self.done = True
                    break
                self.current, self.pos = following, 0
                continue
            end = len(seqs) if upto is None else bisect.bisect_right(seqs, upto, self.pos)
            _extend(taken, self.current, self.pos, end)
            self.pos = end
            if end < len(seqs):
                break
        return taken

    async def close(self) -> None:
        await self.rows.aclose()


def _extend(into: RawBatch, source: RawBatch, start: int, end: int) -> None:
    into.seqs.extend(source.seqs[start:end])
    into.subjects.extend(source.subjects[start:end])
    into.headers.extend(source.headers[start:end])
    into.payloads.extend(source.payloads[start:end])


def combine(parts: Sequence[RawBatch], caught_up: bool) -> RawBatch:
    """The messages of several batches (each in stream order) in stream order, each
    sequence once."""
    nonempty = sorted((part for part in parts if part.seqs), key=lambda part: part.seqs[0])
    merged = empty_batch(caught_up)
    if all(a.seqs[-1] < b.seqs[0] for a, b in itertools.pairwise(nonempty)):
        for part in nonempty:  # one after the other (the usual case): no merge by row
            _extend(merged, part, 0, len(part.seqs))
        return merged
    rows = heapq.merge(
        *(zip(p.seqs, p.subjects, p.headers, p.payloads, strict=True) for p in nonempty),
        key=lambda row: row[0],
    )
    for seq, subject, headers, payload in rows:
        if merged.seqs and merged.seqs[-1] == seq:
            continue
        merged.seqs.append(seq)
        merged.subjects.append(subject)
        merged.headers.append(headers)
        merged.payloads.append(payload)
    return merged


async def with_archives(
    log: AsyncIterator[RawBatch],
    archives: Sequence[WorkflowArchived],
    rows: Rows,
    from_seq: int = 1,
) -> AsyncGenerator[RawBatch, None]:
    """The log's batches with the archived messages from ``from_seq`` on merged in.

    ``archives`` in the order of their first sequences; ``rows`` reads one.
    """
    waiting = list(reversed(archives))  # the next to open last
    running: list[Run] = []

    async def upto(last: int | None) -> list[RawBatch]:
        while waiting and (last is None or waiting[-1].first_seq <= last):
            running.append(Run(rows(waiting.pop())))
        parts = [await run.take(last) for run in running]
        for run in [run for run in running if run.done]:
            running.remove(run)
            await run.close()
        return [_from(part, from_seq) for part in parts]

    try:
        async for batch in log:
            if not waiting and not running:
                yield batch
                continue
            last = batch.seqs[-1] if batch.seqs else None
            if last is None and not batch.caught_up:
                yield batch
                continue
            # An empty caught-up batch ends the log: whatever is archived comes now.
            yield combine([batch, *await upto(last)], batch.caught_up)
        if waiting or running:  # archived after the log's end (cannot happen, but exact)
            yield combine(await upto(None), caught_up=True)
    finally:
        for run in running:
            await run.close()


def _from(batch: RawBatch, from_seq: int) -> RawBatch:
    first = bisect.bisect_left(batch.seqs, from_seq)
    if first == 0:
        return batch
    cut = empty_batch()
    _extend(cut, batch, first, len(batch.seqs))
    return cut


@contextlib.asynccontextmanager
async def replay(
    conn: Connection, size: int, from_seq: int = 1
) -> AsyncIterator[AsyncIterator[RawBatch]]:
    """Batches of everything from ``from_seq`` to the log's end, archives included."""
    found = await announcements(conn, from_seq)
    async with read_to_end(conn.js, conn.endpoint, from_seq=from_seq, size=size) as batches:
        merged = with_archives(batches, found, lambda ref: archived_rows(conn, ref, size), from_seq)
        async with contextlib.aclosing(merged):
            yield merged
