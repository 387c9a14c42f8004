"""Which workflows one scheduler decides for, when several share the load.

With ``partitions`` = N, N schedulers run (each active on one server, by its own lease,
see host/lease.py), and scheduler k folds and decides only the workflows whose id hashes
to k. A job's decisions depend only on its own workflow, so the partitions never need
each other. Every scheduler still reads the whole log: the filter is on the subject,
before decoding, which is the cheap part; folding, deciding, writing and the memory
of the state are what is divided. Workers' events (``ev.worker.…``) go to every one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from jobstream.streams.wire import RawBatch, picked

SCHEDULER_KEY = "scheduler"
PARTITIONS_KEY = "partitions"  # in LEASES: how many this deployment runs


@dataclass(frozen=True)
class Partition:
    index: int = 0
    count: int = 1

    def owns(self, wf: str) -> bool:
        """Whether this partition decides for workflow ``wf`` (a stable hash)."""
        return self.count == 1 or zlib.crc32(wf.encode()) % self.count == self.index

    def owns_subject(self, subject: str) -> bool:
        """``ev.<wf>.…`` of its workflows, and every ``ev.worker.…``."""
        token = subject.split(".", 2)[1] if subject.count(".") >= 2 else ""
        return token == "worker" or self.owns(token)

    def mine(self, raw: RawBatch) -> RawBatch:
        """The messages of a batch this partition folds (the batch itself when all are)."""
        if self.count == 1:
            return raw
        return picked(raw, [i for i, s in enumerate(raw.subjects) if self.owns_subject(s)])

    def lease_key(self) -> str:
        """Its lease's key: one scheduler lease per partition."""
        if self.count == 1:
            return SCHEDULER_KEY
        return f"{SCHEDULER_KEY}-{self.index}-of-{self.count}"


WHOLE_LOG = Partition()  # one scheduler for every workflow


def partitions(count: int) -> list[Partition]:
    return [Partition(index, count) for index in range(count)]
