"""Add golden files: `python -m tests.golden.make_golden [--record]` (from the repo root).

- ``events/<Type>.v<version>.json``: one sample of every event type at its current version.
  Add a file when a version changes; never edit or delete an old one.
- ``logs/<name>.jsonl`` + ``logs/<name>.tables.json`` (``--record``): a recorded event log
  of a real run and the read models it folds to. Tests replay the log and compare, forever;
  record a new log under a new name rather than replacing an old one. ``--refold``
  rewrites only the expected tables, when a read model gains columns.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import anyio

from jobstream import codec
from jobstream.config import Settings
from jobstream.events import (
    JobBlocked,
    JobCanceled,
    JobClaimed,
    JobCompleted,
    JobFailed,
    JobLost,
    JobReady,
    JobRestarted,
    JobRetryScheduled,
    JobStarted,
    JobSubmitted,
    JobTerminated,
    JobTimedOut,
    SlurmAllocationEnded,
    SlurmAllocationStarted,
    SlurmAllocationSubmitted,
    WorkerLost,
    WorkerStarted,
    WorkerStopped,
    WorkflowArchived,
    WorkflowCompleted,
    WorkflowRestarted,
    WorkflowSubmitted,
)
from jobstream.host.embedded import embedded_server
from jobstream.host.local import run_local
from jobstream.model import JobDef, Resources, WorkflowDef
from jobstream.projections.duck import TABLES, DuckStore
from jobstream.projections.service import replay_store
from jobstream.streams.connection import open_connection
from jobstream.streams.reader import read_until_caught_up
from jobstream.streams.wire import RawBatch
from jobstream.workers.context import WorkerOptions

HERE = Path(__file__).parent
SPEC = JobDef(
    index=2,
    name="train_lr0.0100",
    command="python train.py --lr 0.01",
    resources=Resources(num_cpus=4, memory_mib=8192, num_gpus=1, runtime_s=7200),
    depends_on=(0, 1),
    input_files=("data",),
    output_files=("model",),
    env={"SEED": "1"},
)
W = {"wf": "1m89b7e4mgq04x4", "at": 1764072000.25}
J = {**W, "job": 2}
END = {
    "worker": "node1-42-ab12",
    "attempt": 1,
    "exec_time_s": 12.5,
    "peak_memory_mib": 512.0,
    "cpu_time_s": 11.0,
    "stdout": "/logs/out",
    "stderr": "/logs/err",
    "stderr_tail": "done",
}
SAMPLES = [
    WorkflowSubmitted(
        **W,
        actor="user:ana",
        name="sweep",
        user="ana",
        description="d",
        spec_digest="ab" * 32,
        job_count=3,
        workdir="/home/ana",
        files={"data": "/d.csv"},
        user_data={"cfg": {"a": 1}},
        extras={"project": "p"},
    ),
    WorkflowCompleted(**W, actor="scheduler", counts={"completed": 3}),
    WorkflowRestarted(**W, actor="user:ana", jobs=(2,)),
    WorkflowArchived(
        **W,
        actor="projector",
        object="1m89b7e4mgq04x4.parquet",
        events=42,
        first_seq=7,
        last_seq=99,
        size=4096,
        digest="SHA-256=" + "A" * 43 + "=",
    ),
    JobRestarted(**J, actor="user:ana", reason="restarted by user"),
    JobSubmitted(**J, actor="user:ana", spec=SPEC),
    JobBlocked(**J, actor="scheduler", unmet=(0, 1)),
    JobReady(**J, actor="scheduler", pool="default", hardware_class="c4.m8192.g1.n1.t7200"),
    JobClaimed(**J, actor="node1-42-ab12", worker="node1-42-ab12", attempt=1, lease_s=30.0),
    JobStarted(
        **J,
        actor="node1-42-ab12",
        worker="node1-42-ab12",
        attempt=1,
        pid=4242,
        host="node1",
        gpu_ids=(0,),
    ),
    JobCompleted(**J, actor="node1-42-ab12", return_code=0, **END),
    JobFailed(**J, actor="node1-42-ab12", return_code=3, **END),
    JobTimedOut(**J, actor="node1-42-ab12", return_code=-15, **END),
    JobCanceled(**J, actor="scheduler", reason="dependency 'prep' failed"),
    JobRetryScheduled(
        **J, actor="node1-42-ab12", return_code=10, rule=0, retry=1, recovery_return_code=0, **END
    ),
    JobTerminated(**J, actor="node1-42-ab12", return_code=-15, reason="worker stopping", **END),
    JobLost(**J, actor="node2-7-cd34", worker="node1-42-ab12", attempt=1, reason="lease expired"),
    WorkerStarted(
        at=W["at"],
        actor="node1-42-ab12",
        worker="node1-42-ab12",
        host="node1",
        capacity=Resources(num_cpus=8, memory_mib=32768, num_gpus=2),
        pools=("default",),
        walltime_s=14400.0,
    ),
    WorkerLost(at=W["at"], actor="node2-7-cd34", worker="node1-42-ab12", reason="lease expired"),
    WorkerStopped(
        at=W["at"], actor="node1-42-ab12", worker="node1-42-ab12", reason="idle", jobs_run=17
    ),
    SlurmAllocationSubmitted(
        at=W["at"],
        actor="user:ana",
        allocation="alloc-1a2b3c4d",
        slurm_job_id="4242",
        wf=W["wf"],
        scheduler="gpu_node",
        nodes=2,
        walltime_s=14400.0,
    ),
    SlurmAllocationStarted(
        at=W["at"],
        actor="server",
        allocation="alloc-1a2b3c4d",
        slurm_job_id="4242",
        nodes_list="node[1-2]",
    ),
    SlurmAllocationEnded(
        at=W["at"],
        actor="server",
        allocation="alloc-1a2b3c4d",
        slurm_job_id="4242",
        state="COMPLETED",
    ),
]


def write_event_samples() -> None:
    folder = HERE / "events"
    folder.mkdir(exist_ok=True)
    for event in SAMPLES:
        path = folder / f"{type(event).__name__}.v{type(event).VERSION}.json"
        if not path.exists():  # old versions are never rewritten
            path.write_text(json.dumps(json.loads(codec.encode(event)), indent=2) + "\n")


def recorded_workflow() -> WorkflowDef:
    small = Resources(num_cpus=1, memory_mib=64, runtime_s=60)
    jobs = [
        ("prep", "echo prep", ()),
        ("ok", "echo ok", (0,)),
        ("bad", "echo broken >&2; exit 3", (0,)),
        ("after_bad", "echo never", (2,)),
        ("join", "echo join", (1, 3)),
    ]
    return WorkflowDef(
        name="golden",
        jobs=tuple(
            JobDef(index=i, name=n, command=c, depends_on=d, resources=small)
            for i, (n, c, d) in enumerate(jobs)
        ),
    )


async def record_log(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        options = WorkerOptions(
            capacity=Resources(num_cpus=2, memory_mib=1024),
            log_dir=Path(tmp) / "logs",
            worker_id="golden-worker",
        )
        async with embedded_server(Path(tmp) / "server") as url:
            settings = Settings(nats_url=url, state_dir=Path(tmp) / "state")
            await run_local(settings, recorded_workflow(), options)
            await dump(url, name)


async def dump(url: str, name: str) -> None:
    async with open_connection(url) as conn:
        lines = [
            json.dumps(
                {
                    "seq": s.seq,
                    "subject": s.subject,
                    "headers": codec.headers_for(s.event),
                    "data": s.data.decode(),
                }
            )
            async for s in read_until_caught_up(conn.js)
        ]
        store = DuckStore(":memory:")
        await replay_store(conn, store)  # the recorded log, folded by the current code
        tables = {t: store.query(f"SELECT * FROM {t} ORDER BY ALL").to_pylist() for t in TABLES}
    (HERE / "logs").mkdir(exist_ok=True)
    (HERE / "logs" / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    (HERE / "logs" / f"{name}.tables.json").write_text(
        json.dumps(tables, indent=1, default=str) + "\n"
    )


def refold(name: str) -> None:
    """Rewrite a recorded log's expected tables after a read model gained columns.

    Review the diff: existing values must not change, only new columns appear.
    """
    lines = [json.loads(x) for x in (HERE / "logs" / f"{name}.jsonl").read_text().splitlines()]
    raw = RawBatch(
        [x["seq"] for x in lines],
        [x["subject"] for x in lines],
        [x["headers"] for x in lines],
        [x["data"].encode() for x in lines],
        True,
    )
    store = DuckStore(":memory:")
    store.apply(raw)
    tables = {t: store.query(f"SELECT * FROM {t} ORDER BY ALL").to_pylist() for t in TABLES}
    path = HERE / "logs" / f"{name}.tables.json"
    path.write_text(json.dumps(tables, indent=1, default=str) + "\n")


if __name__ == "__main__":
    write_event_samples()
    if "--record" in sys.argv:  # a new recording replaces the old: only for a new log
        anyio.run(record_log, "failure_cascade")
    if "--refold" in sys.argv:
        refold("failure_cascade")
