"""How ``jobstream workers`` shows a heartbeat: lost after three missed intervals (never
once stopped cleanly), the stable ``--json`` shape, the jobs column."""

from __future__ import annotations

import msgspec

from jobstream.cli.workers import in_use, jobs_text
from jobstream.model import Resources, RunningJob, WorkerHeartbeat, WorkerState
from jobstream.views.workers import WorkerView, lost

BEAT = WorkerHeartbeat(
    id="node1-42-abcd",
    host="node1",
    pid=42,
    pools=("default",),
    capacity=Resources(num_cpus=4, memory_mib=8192, runtime_s=3600),
    started_at=1000.0,
    heartbeat_at=2000.0,
    interval_s=5.0,
)


def test_a_worker_is_lost_after_three_missed_heartbeats_unless_it_stopped() -> None:
    assert not lost(BEAT, 2015.0)
    assert lost(BEAT, 2015.1)
    assert WorkerView(BEAT, 2016.0).state == "lost?"
    stopped = msgspec.structs.replace(BEAT, state=WorkerState.STOPPED)
    assert not lost(stopped, 1e12)
    assert WorkerView(stopped, 1e12).state == "stopped"


def test_the_json_shape_is_the_heartbeat_plus_age_and_lost() -> None:
    shown = WorkerView(BEAT, 2003.04).as_json()
    assert shown["heartbeat_age_s"] == 3.0 and shown["lost"] is False
    assert shown["state"] == "running" and shown["capacity"] == {
        "num_cpus": 4, "memory_mib": 8192, "num_gpus": 0, "num_nodes": 1, "runtime_s": 3600,
    }  # fmt: skip
    assert set(shown) == set(WorkerHeartbeat.__struct_fields__) | {"heartbeat_age_s", "lost"}


def test_the_table_names_the_first_jobs_and_what_they_hold() -> None:
    running = tuple(RunningJob(wf="wf1", job=n, attempt=1, started_at=1500.0) for n in range(5))
    busy = msgspec.structs.replace(BEAT, running=running, cpus_used=4, memory_used_mib=4096)
    assert jobs_text(busy) == "5: wf1.0, wf1.1, wf1.2, …"
    assert in_use(busy) == "4 cpu 4g"
    assert jobs_text(BEAT) == "-" and in_use(BEAT) == "-"
