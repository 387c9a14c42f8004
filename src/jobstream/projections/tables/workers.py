"""``workers``: one row per worker: its capacity, pools, lifetime and how it stopped."""

from __future__ import annotations

from jobstream.projections.model import RESOURCE_FIELDS, ReadModel, latest, own_fields, ts

STARTED, STOPPED, LOST = "WorkerStarted", "WorkerStopped", "WorkerLost"
FIELDS: dict[str, object] = {
    "capacity": RESOURCE_FIELDS, "pools": ["VARCHAR"], "walltime_s": "DOUBLE", "jobs_run": "BIGINT",
    "slurm_job_id": "VARCHAR",
}  # fmt: skip

MODEL = ReadModel(
    name="workers",
    columns={
        "worker": "VARCHAR",
        "host": "VARCHAR",
        "num_cpus": "INTEGER",
        "memory_mib": "BIGINT",
        "num_gpus": "INTEGER",
        "pools": "VARCHAR",
        "walltime_s": "DOUBLE",
        "started_at": "TIMESTAMP",
        "stopped_at": "TIMESTAMP",
        "stop_reason": "VARCHAR",
        "jobs_run": "BIGINT",
        "slurm_job_id": "VARCHAR",  # the allocation it ran in (NULL: none)
    },
    reads=frozenset({STARTED, STOPPED, LOST}),
    key=("worker",),
    fold=f"""
        SELECT e.worker, {latest("e.host", STARTED)},
               {latest("f.capacity.num_cpus", STARTED)}, {latest("f.capacity.memory_mib", STARTED)},
               {latest("f.capacity.num_gpus", STARTED)},
               {latest("array_to_string(f.pools, ',')", STARTED)},
               {latest("f.walltime_s", STARTED)}, {latest(ts(), STARTED)},
               {latest(ts(), STOPPED, LOST)},
               {
        latest(
            "CASE e.type WHEN 'WorkerLost' THEN 'lost: ' || e.reason ELSE e.reason END",
            STOPPED,
            LOST,
        )
    },
               {latest("f.jobs_run", STOPPED)},
               {latest("nullif(f.slurm_job_id, '')", STARTED)}
        FROM {own_fields(FIELDS, STARTED, STOPPED, LOST)}
        GROUP BY e.worker
    """,
)
