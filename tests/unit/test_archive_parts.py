"""Archives, piece by piece: the Parquet file, the merge with the log, the decisions."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import pytest

from jobstream.archive.archiver import NotArchivable, archivable
from jobstream.archive.parquet import ArchiveWriter, read_archive
from jobstream.archive.replay import combine, with_archives
from jobstream.config import load_settings
from jobstream.errors import ConfigError
from jobstream.events import WorkflowArchived, WorkflowCompleted, WorkflowRestarted
from jobstream.streams.store import Stored
from jobstream.streams.subjects import workflow_filter, workflow_subjects
from jobstream.streams.wire import RawBatch

from .test_scheduler_state import WF, Log, diamond, ran, submitted


def batch(*seqs: int, caught_up: bool = False, tag: str = "") -> RawBatch:
    return RawBatch(
        list(seqs),
        [f"ev.w.job.{s}.X" for s in seqs],
        [{"Jobstream-Version": "1"} if s % 2 else None for s in seqs],
        [f"{tag}{s}".encode() for s in seqs],
        caught_up,
    )


def announced(wf: str, first: int, last: int) -> WorkflowArchived:
    return WorkflowArchived(
        wf=wf, at=0, actor="p", object=f"{wf}.parquet", events=0, first_seq=first,
        last_seq=last, size=0, digest="",
    )  # fmt: skip


def test_an_archive_file_gives_back_exactly_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    with ArchiveWriter(path) as writer:
        writer.write(batch(3, 5))
        writer.write(batch())
        writer.write(batch(9))
        with pytest.raises(ValueError, match="out of order"):
            writer.write(batch(9))
        written = writer.close()
    assert written == (3, 3, 9)
    read = list(read_archive(path, rows=2))
    assert [b.seqs for b in read] == [[3, 5], [9]]
    assert read[0].headers == [{"Jobstream-Version": "1"}] * 2 and read[0].payloads == [b"3", b"5"]


def test_a_file_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"seq": [1]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not a jobstream archive"):
        list(read_archive(tmp_path / "other.parquet"))


def test_combine_keeps_stream_order_and_each_sequence_once() -> None:
    merged = combine([batch(1, 4, 7), batch(2, 4, 8, tag="a")], caught_up=True)
    assert merged.seqs == [1, 2, 4, 7, 8] and merged.caught_up
    assert merged.payloads[2] in (b"4", b"a4")


async def _from_list(batches: list[RawBatch]) -> AsyncIterator[RawBatch]:
    for each in batches:
        yield each


async def test_archived_messages_arrive_in_stream_order_with_the_log() -> None:
    runs = {
        "a": [batch(2, 3), batch(6, 11)],  # spans several log batches
        "b": [batch(8, 9)],
        "c": [batch(20)],  # past the log's end: cannot happen, still read
    }
    opened: list[str] = []

    async def rows(ref: WorkflowArchived) -> AsyncGenerator[RawBatch, None]:
        opened.append(ref.wf)
        for each in runs[ref.wf]:
            yield each

    log = [batch(4), batch(5, 7, 10), batch(), batch(12, caught_up=True)]  # from 3 on
    refs = [announced("a", 2, 11), announced("b", 8, 9), announced("c", 20, 20)]
    got = [b async for b in with_archives(_from_list(log), refs, rows, from_seq=3)]
    seqs = [s for b in got for s in b.seqs]
    assert seqs == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 20]
    assert got[-1].caught_up
    assert opened == ["a", "b", "c"]


def test_only_a_finished_workflow_is_archived_and_only_once() -> None:
    done = Stored(5, "s", WorkflowCompleted(wf=WF, at=0, actor="s", counts={}), b"")
    again = Stored(6, "s", WorkflowRestarted(wf=WF, at=0, actor="u", jobs=(1,)), b"")
    archived = Stored(7, "s", announced(WF, 1, 4), b"")
    assert archivable(done, WF) is None
    assert archivable(archived, WF) == archived.event
    with pytest.raises(NotArchivable, match="not finished"):
        archivable(again, WF)
    with pytest.raises(NotArchivable, match="no workflow"):
        archivable(None, WF)


def test_the_scheduler_lets_go_of_an_archived_workflow() -> None:
    log = Log()
    submitted(log, diamond())
    for n in range(4):
        ran(log, n)
    log.add(WorkflowCompleted(wf=WF, at=0, actor="s", counts={"completed": 4}))
    log.state.evict_completed()
    assert WF in log.state.finished
    assert log.add(announced(WF, 1, log.seq)) == []
    assert WF not in log.state.finished and WF not in log.state.workflows
    fresh = Log()  # a replay of a log whose workflow was purged: the announcement alone
    assert fresh.add(announced(WF, 1, 40)) == [] and not fresh.state.workflows


def test_retention_is_seconds_or_never() -> None:
    assert load_settings().archive_after_s() == 30 * 86400
    assert load_settings(retention_s=7).archive_after_s() == 7
    assert load_settings(retention_s=0).archive_after_s() is None
    with pytest.raises(ConfigError, match="retention_s"):
        load_settings(retention_s=-1)


@pytest.mark.parametrize("wf", ["*", ">", "a.b", "a.*", "", "a b", "x" * 65])
def test_a_workflow_id_that_would_filter_other_workflows_is_refused(wf: str) -> None:
    with pytest.raises(ConfigError, match="is not a workflow id"):
        workflow_filter(wf)
    with pytest.raises(ConfigError, match="is not a workflow id"):
        workflow_subjects(wf)
