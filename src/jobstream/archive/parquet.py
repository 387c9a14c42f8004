"""An archive file: a workflow's stored messages, exactly as the log held them.

One row per message, in stream order: sequence, subject, the headers (JSON) and the
payload bytes, so a replay from the archive folds what a replay from the log folded.
Written and read in row groups, so neither side holds a whole workflow in memory.
Blocking: call from a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from jobstream.streams.wire import RawBatch

SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("subject", pa.string()),
        ("headers", pa.string()),
        ("payload", pa.binary()),
    ]
)
ROWS_PER_READ = 50_000


class Written(NamedTuple):
    """What an archive file holds: how many messages, and their first and last sequence."""

    events: int
    first_seq: int
    last_seq: int


class ArchiveWriter:
    """Appends batches of messages to a new Parquet file (zstd), in stream order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self.events, self.first_seq, self.last_seq = 0, 0, 0

    def write(self, batch: RawBatch) -> None:
        if not batch.seqs:
            return
        if batch.seqs[0] <= self.last_seq:
            raise ValueError(f"archive {self.path}: sequence {batch.seqs[0]} out of order")
        self.writer.write_table(
            pa.table(
                {
                    "seq": pa.array(batch.seqs, pa.int64()),
                    "subject": pa.array(batch.subjects, pa.string()),
                    "headers": pa.array(
                        [None if h is None else json.dumps(h) for h in batch.headers], pa.string()
                    ),
                    "payload": pa.array(batch.payloads, pa.binary()),
                },
                schema=SCHEMA,
            )
        )
        self.first_seq = self.first_seq or batch.seqs[0]
        self.events += len(batch.seqs)
        self.last_seq = batch.seqs[-1]

    def close(self) -> Written:
        self.writer.close()
        return Written(self.events, self.first_seq, self.last_seq)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.writer.close()


def read_archive(path: Path, rows: int = ROWS_PER_READ) -> Generator[RawBatch, None, None]:
    """The archive's messages in batches of up to ``rows``, in stream order."""
    parsed: dict[str, dict[str, str]] = {}  # headers repeat: one dict per distinct text

    def headers_of(text: str | None) -> dict[str, str] | None:
        if text is None:
            return None
        found = parsed.get(text)
        if found is None:
            found = parsed[text] = json.loads(text)
        return found

    with pq.ParquetFile(path) as file:
        if file.schema_arrow != SCHEMA:
            raise ValueError(f"{path} is not a jobstream archive (schema {file.schema_arrow})")
        for part in file.iter_batches(batch_size=rows):
            columns = part.to_pydict()
            yield RawBatch(
                columns["seq"],
                columns["subject"],
                [headers_of(text) for text in columns["headers"]],
                columns["payload"],
                caught_up=False,
            )
