"""What a worker is given (:class:`WorkerOptions`) and what its attempts share
(:class:`WorkerContext`, built once when the worker starts)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from anyio.abc import TaskGroup
from nats.js.object_store import ObjectStore

from jobstream.config import Settings
from jobstream.ids import new_worker_id
from jobstream.model import Resources, WorkItem
from jobstream.streams.pipeline import Pipeline
from jobstream.streams.repository import JobRepository
from jobstream.workers.outputs import OutputFiles
from jobstream.workers.slots import Slots


@dataclass
class WorkerOptions:
    """How a worker is sized and when it stops."""

    capacity: Resources
    pools: tuple[str, ...] = ("default",)
    walltime_s: float = float("inf")
    idle_timeout_s: float = 0.0
    lease_s: float = 30.0
    log_dir: Path = Path(".jobstream/logs")
    workdir: str | None = None
    term_grace_s: float = 5.0  # SIGTERM -> SIGKILL delay for a job past its runtime
    worker_id: str = field(default_factory=new_worker_id)
    slurm_job_id: str = ""  # the Slurm allocation it runs in, if any

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        capacity: Resources,
        *,
        pools: tuple[str, ...] | list[str] = (),
        walltime_s: float = float("inf"),
        log_dir: Path | None = None,
        workdir: Path | None = None,
        slurm_job_id: str = "",
    ) -> WorkerOptions:
        """A worker as ``jobstream worker`` starts one: the settings' pool, lease, idle
        timeout and state directory unless given."""
        return cls(
            capacity=capacity,
            pools=tuple(pools) or (settings.pool,),
            walltime_s=walltime_s,
            idle_timeout_s=settings.idle_timeout_s,
            lease_s=settings.lease_s,
            log_dir=(log_dir or settings.state_dir / "logs").resolve(),
            workdir=str(workdir.resolve()) if workdir else None,
            slurm_job_id=slurm_job_id,
        )


class JobFolders:
    """Where jobs run: their workflow's folder if this host has it, else the worker's.

    Folders found are remembered (a stat per job is not free next to the launch
    threads); a missing one is looked for again each time, it may be created later.
    """

    def __init__(self, chosen: str | None) -> None:
        self.chosen = chosen  # the worker's --workdir, which wins
        self.known: set[str] = set()

    def of(self, submitted_from: str) -> str:
        folder = self.chosen or submitted_from
        if folder and folder in self.known:
            return folder
        if folder and os.path.isdir(folder):
            self.known.add(folder)
            return folder
        return os.getcwd()


@dataclass(frozen=True)
class WorkerContext:
    """Everything an attempt needs of its worker; made once the worker has started."""

    worker_id: str
    host: str
    options: WorkerOptions
    jobs: JobRepository  # appends retried through outages (see APPEND_PATIENCE_S)
    pipeline: Pipeline  # acks of WORK messages
    slots: Slots
    outputs: OutputFiles
    logs: ObjectStore
    background: TaskGroup  # for stopping processes from callbacks
    folders: JobFolders
    base_env: dict[str, str]  # copying os.environ per job costs more than the copy once
    stop_reason: Callable[[], str]
    holder_answers: Callable[[str, str, int], Awaitable[bool]]  # (holder, wf, job): probe

    def job_env(self, item: WorkItem, attempt: int) -> dict[str, str]:
        """A job's environment (a GPU job's CUDA_VISIBLE_DEVICES is added at spawn)."""
        spec = item.spec
        env = {**self.base_env, **spec.env}
        env.update(
            JOBSTREAM_WORKFLOW_ID=item.wf,
            JOBSTREAM_JOB_INDEX=str(item.job),
            JOBSTREAM_JOB_NAME=spec.name,
            JOBSTREAM_ATTEMPT=str(attempt),
            JOBSTREAM_WORKER_ID=self.worker_id,
        )
        return env
