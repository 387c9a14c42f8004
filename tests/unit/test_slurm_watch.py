"""The allocation watcher's decisions, from the log's allocations and one squeue answer;
and an old read-model file gaining the columns a model gained."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from jobstream.events import SlurmAllocationEnded, SlurmAllocationStarted, SlurmAllocationSubmitted
from jobstream.projections.duck import DuckStore
from jobstream.slurm.watch import Open, Seen, decide, fold, parse_squeue


def submitted(allocation: str, job: str) -> SlurmAllocationSubmitted:
    return SlurmAllocationSubmitted(
        at=0, actor="u", allocation=allocation, slurm_job_id=job, wf="wf1", scheduler="s",
        nodes=1, walltime_s=600,
    )  # fmt: skip


def test_the_open_allocations_are_folded_from_their_events() -> None:
    open_: dict[str, Open] = {}
    fold(open_, 3, submitted("a1", "11"))
    fold(open_, 4, submitted("a2", "12"))
    fold(open_, 7, SlurmAllocationStarted(at=0, actor="w", allocation="a1", slurm_job_id="11",
                                          nodes_list="n1"))  # fmt: skip
    fold(open_, 9, SlurmAllocationEnded(at=0, actor="w", allocation="a2", slurm_job_id="12",
                                        state="CANCELLED"))  # fmt: skip
    assert open_ == {"a1": Open("11", 0, 7, "wf1", "s", 1)}


def test_slurm_s_answer_starts_and_ends_allocations_once() -> None:
    open_ = {
        "a1": Open("11", None, 3, "wf1", "s", 1),  # pending
        "a2": Open("12", None, 4, "wf1", "s", 1),  # running now
        "a3": Open("13", 1.0, 5, "wf1", "s", 1),  # ended
        "a4": Open("14", 1.0, 6, "wf1", "s", 1),  # gone from squeue
        "a5": Open("15", 1.0, 8, "wf1", "s", 1),  # still running: nothing to say
        "a6": Open("16", None, 9, "wf1", "s", 1),  # ran and ended between two looks
        "a7": Open("17", None, 10, "wf1", "s", 1),  # canceled before it started
    }
    seen = parse_squeue(
        "11|PENDING||N/A\n12|RUNNING|n[1-2]|2026-12-07T07:00:00\n13|TIMEOUT|n3|N/A\n"
        "15|RUNNING|n4|N/A\n16|COMPLETED|n5|N/A\n17|CANCELLED||N/A\n"
    )
    assert seen["12"] == Seen("RUNNING", "n[1-2]", time.mktime((2026, 12, 7, 7, 0, 0, 0, 0, -1)))
    found = {(type(e).__name__, e.allocation, expected) for e, expected in decide(open_, seen, 1.0)}
    assert found == {
        ("SlurmAllocationStarted", "a2", 4),
        ("SlurmAllocationEnded", "a3", 5),
        ("SlurmAllocationEnded", "a4", 6),
        ("SlurmAllocationStarted", "a6", 9),  # its end at the next look
        ("SlurmAllocationEnded", "a7", 10),
    }
    ended = {e.allocation: e for e, _ in decide(open_, seen, 1.0)}
    assert isinstance(ended["a4"], SlurmAllocationEnded) and ended["a4"].state == "UNKNOWN"
    assert ended["a2"].at == seen["12"].started and ended["a6"].at == 1.0  # Slurm's start time


def test_an_old_file_gains_the_columns_a_read_model_gained(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    db = duckdb.connect(str(path))
    db.execute("CREATE TABLE workers (worker VARCHAR PRIMARY KEY, host VARCHAR)")
    db.execute("INSERT INTO workers VALUES ('w1', 'h1')")
    db.close()
    store = DuckStore(path)
    try:
        rows = store.query("SELECT worker, slurm_job_id, jobs_run FROM workers").to_pylist()
    finally:
        store.close()
    assert rows == [{"worker": "w1", "slurm_job_id": None, "jobs_run": None}]
