"""The async Python library: every operation of the ``jobstream`` command, from a program.

    async with Client(nats_url="nats://127.0.0.1:4222") as js:
        wf = await js.submit("sweep.yaml")
        async for change in js.watch(wf):
            print(change)
        rows = await js.sql("select state, count(*) from jobs group by 1")

Without a URL it finds this directory's ``jobstream server``; with ``embedded=True`` it
starts a private embedded server on the state directory's store (like the CLI's ``run``).
Each method calls the same operation (:mod:`jobstream.ops`, :mod:`jobstream.views`,
:mod:`jobstream.host`) as the command of the same name.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskStatus

from jobstream.config import Settings, load_settings, sources
from jobstream.errors import JobstreamError
from jobstream.gateway.client import Submitter, submitter_session
from jobstream.host import accounts, cluster
from jobstream.host.allocations import IDLE_TIMEOUT_S, Allocation, listed, schedule_nodes
from jobstream.host.autoalloc import autoalloc
from jobstream.host.cluster import ClusterPlan, LocalCluster
from jobstream.host.connect import connect, submitter_url, tls_of
from jobstream.host.credentials import role_of
from jobstream.host.local import Hooks, RunOutcome, local_worker, run_on
from jobstream.host.loop import tune_for_throughput
from jobstream.host.supervise import supervised
from jobstream.model import WorkflowDef
from jobstream.ops.cancel import CancelResult, cancel_jobs
from jobstream.ops.check import spec_summary
from jobstream.ops.explain import explain_job
from jobstream.ops.jobs import resolve_job
from jobstream.ops.rebuild import archive_workflows, rebuild_models
from jobstream.ops.restart import restart_failed
from jobstream.ops.submit import submit_workflow
from jobstream.projections.records import JobRecord, WorkflowStatus
from jobstream.projections.service import Projector
from jobstream.scheduler.service import Scheduler
from jobstream.slurm.autoalloc import Limits
from jobstream.spec import DEFAULT_MAX_JOBS, load_spec
from jobstream.streams.connection import Connection
from jobstream.streams.store import IllFormed, Stored
from jobstream.views.history import history
from jobstream.views.sql import answer
from jobstream.views.status import changes, follow, latest_workflow, statuses, with_problems
from jobstream.views.workers import WorkerView, worker_views
from jobstream.workers.capacity import local_capacity
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

Spec = WorkflowDef | str | Path
T = TypeVar("T")


def _workflow(spec: Spec, max_jobs: int = DEFAULT_MAX_JOBS) -> WorkflowDef:
    return spec if isinstance(spec, WorkflowDef) else load_spec(spec, max_jobs=max_jobs)


class _Session(Generic[T]):
    """What ``async with`` opens (a connection, a submitter's session) and closes."""

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._opened: T | None = None

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._opened = None
        await self._stack.aclose()

    def _session(self) -> T:
        if self._opened is None:
            raise RuntimeError(f"use the client inside `async with {type(self).__name__}(...)`")
        return self._opened


class Client(_Session[Connection]):
    """A connection to a jobstream deployment (use as ``async with``)."""

    def __init__(
        self,
        nats_url: str | None = None,
        *,
        state_dir: str | Path | None = None,
        creds: str | Path | None = None,
        embedded: bool = False,
        settings: Settings | None = None,
    ) -> None:
        self.settings: Settings = settings or load_settings(
            nats_url=nats_url, state_dir=state_dir, creds=creds
        )
        self.embedded = embedded
        super().__init__()

    async def __aenter__(self) -> Client:
        if role_of(self.settings.creds) == "submitter":
            raise JobstreamError(
                f"{self.settings.creds} is a submitter's: use jobstream.SubmitterClient"
            )
        self._opened = await self._stack.enter_async_context(
            connect(self.settings, embedded=self.embedded, name="jobstream-client")
        )
        return self

    @property
    def conn(self) -> Connection:
        return self._session()

    # --- workflows -----------------------------------------------------------------

    @staticmethod
    def check(spec: Spec, *, max_jobs: int = DEFAULT_MAX_JOBS) -> dict[str, object]:
        """Validate and expand a spec (no server needed): what ``jobstream check`` prints."""
        return spec_summary(_workflow(spec, max_jobs))

    async def submit(self, spec: Spec, *, workdir: str | None = None) -> str:
        """Submit a spec file or an expanded workflow; returns the workflow id."""
        workflow = _workflow(spec, self.settings.max_jobs)
        return await submit_workflow(self.conn, workflow, workdir=workdir or os.getcwd())

    async def run(
        self,
        spec: Spec,
        worker: WorkerOptions | None = None,
        *,
        services: bool | None = None,
        on_update: Callable[[WorkflowStatus], None] | None = None,
        resume: bool = False,
    ) -> RunOutcome:
        """Submit a workflow and run it to its end with a worker in this process (by
        default this machine's size), like ``jobstream run`` (``resume``: also what
        earlier runs left unfinished, else refused)."""
        workflow = _workflow(spec, self.settings.max_jobs)
        tune_for_throughput()  # this process hosts a worker now
        options = worker or local_worker(self.settings, workflow, local_capacity())
        hooks = Hooks(on_update=on_update)
        return await run_on(
            self.conn,
            self.settings,
            workflow,
            options,
            services=services,
            hooks=hooks,
            resume=resume,
        )

    async def cancel(
        self, wf: str, jobs: list[int] | None = None, *, reason: str = "canceled by user"
    ) -> CancelResult:
        """Cancel a workflow's unfinished jobs (or the given ones)."""
        return await cancel_jobs(self.conn, wf, jobs, reason=reason)

    async def restart(self, wf: str) -> list[int]:
        """Run the failed, timed-out and canceled jobs again; the jobs restarted."""
        return await restart_failed(self.conn, wf)

    # --- looking ---------------------------------------------------------------------

    async def status(self, wf: str | None = None) -> list[WorkflowStatus]:
        """One workflow's status or every workflow's, with the jobs that did not complete."""
        return await statuses(self.conn, self.settings, wf)

    async def wait(self, wf: str) -> WorkflowStatus:
        """Wait until the workflow has finished; its status."""
        return await with_problems(self.conn, self.settings, await follow(self.conn, wf))

    async def watch(self, wf: str | None = None) -> AsyncIterator[JobRecord | WorkflowStatus]:
        """Job state changes (and workflow statuses) as they happen, until it finishes;
        by default of the latest unfinished workflow, as ``jobstream watch``."""
        found = wf or await latest_workflow(self.conn)
        if found is None:
            raise JobstreamError("no workflows yet")
        async for change in changes(self.conn, found):
            yield change

    async def events(self, wf: str, job: int | str | None = None) -> list[Stored | IllFormed]:
        """The recorded history of a workflow or one job (index or name), oldest first,
        messages that are not events included (as IllFormed)."""
        index = None if job is None else await resolve_job(self.conn, wf, job)
        return [stored async for events in history(self.conn, wf, index) for stored in events]

    async def explain(self, wf: str, job: int | str) -> list[str]:
        """Why a job (index or name) is or is not running, in sentences."""
        return await explain_job(self.conn, self.settings, wf, job)

    async def sql(self, query: str, *, arrow: bool = False, as_of: str | None = None) -> Any:
        """Rows as a list of dicts, or a ``pyarrow.Table`` with ``arrow=True``; ``as_of``
        a stream sequence or a time answers from the state then."""
        table = await answer(self.conn, self.settings, query, as_of)
        return table if arrow else table.to_pylist()

    async def rebuild(self) -> dict[str, object]:
        """Replay the whole log into fresh read models; events, seconds, path."""
        return await rebuild_models(self.conn, self.settings)

    async def archive(self, *workflows: str) -> list[dict[str, object]]:
        """Archive finished workflows now (the running projector does): their events move
        to Parquet in ARCHIVE and out of EVENTS, still read by ``events`` and ``sql``."""
        return await archive_workflows(self.conn, list(workflows))

    async def schedule_nodes(
        self,
        wf: str,
        scheduler: str,
        num: int = 1,
        *,
        submit: bool = True,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> list[Allocation]:
        """Submit Slurm allocations of one of the workflow's ``slurm_schedulers``, each
        running a jobstream worker per node with credentials of its own."""
        return await schedule_nodes(
            self.conn, self.settings, wf, scheduler, num, submit, idle_timeout_s
        )

    async def autoalloc(
        self, wf: str, schedulers: Sequence[str] = (), limits: Limits | None = None
    ) -> int:
        """Submit Slurm allocations while the workflow's jobs wait (its ``schedulers``,
        default all), within ``limits`` (default: the settings'), until it is finished;
        how many were submitted."""
        return await autoalloc(self.conn, self.settings, wf, schedulers, limits)

    async def allocations(self, wf: str | None = None) -> list[dict[str, Any]]:
        """Slurm allocations (of one workflow): job id, state, nodes, times, and the
        workers and attempts that ran in each."""
        return await listed(self.conn, self.settings, wf)

    # --- users (of this state directory's server) ----------------------------------------

    def add_user(self, name: str, role: str = "submitter", out: str | Path | None = None) -> Path:
        """Add a user (in effect at once on a running server); its credentials file."""
        change = accounts.add(self.settings.state_dir, name, role, Path(out) if out else None)
        assert change.creds is not None
        return change.creds

    def users(self) -> list[dict[str, object]]:
        """Users and roles, the server's own login first (never a password)."""
        return accounts.listed(self.settings.state_dir)

    def revoke_user(self, name: str) -> None:
        """Remove a user: its logins are refused and its connections closed."""
        accounts.revoke(self.settings.state_dir, name)

    def cluster_config(
        self,
        hosts: Sequence[str],
        *,
        store: Path | None = None,
        listen: str = "0.0.0.0",
        ports: tuple[int, int, int] = (4222, 6222, 8222),
    ) -> ClusterPlan:
        """Write a NATS cluster's node configurations into the state directory (one node
        per host; `jobstream cluster config`); the cluster planned."""
        return cluster.configure(
            self.settings.state_dir,
            hosts,
            store=store,
            listen=listen,
            ports=ports,
            sync=self.settings.sync,
        )

    def dev_cluster(self, nodes: int = 3) -> contextlib.AbstractAsyncContextManager[LocalCluster]:
        """A NATS cluster of ``nodes`` on loopback for the time of an ``async with``
        (`jobstream dev-cluster`); its ``dial_url`` logs in."""
        return cluster.local_cluster(self.settings.state_dir, nodes, self.settings.sync)

    def config(self) -> dict[str, tuple[Any, str]]:
        """Each setting's value and where it came from (file, environment, argument)."""
        return sources(nats_url=self.settings.nats_url, state_dir=self.settings.state_dir)

    # --- running the services ----------------------------------------------------------

    async def serve(
        self,
        *,
        scheduler: bool = True,
        projector: bool = True,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run a scheduler and a projector on this connection until cancelled (what
        ``jobstream server`` and ``jobstream projector`` run, without their leases: one
        such process per log); ready (``task_status``) once both have caught up."""
        tune_for_throughput()
        conn, settings = self.conn, self.settings
        async with anyio.create_task_group() as tg:
            if scheduler:
                await tg.start(supervised, "scheduler", lambda: Scheduler(conn, settings.lease_s))
            if projector:
                await tg.start(
                    supervised,
                    "projector",
                    lambda: Projector.of(conn, settings),
                )
            task_status.started()

    async def work(self, options: WorkerOptions | None = None) -> Worker:
        """Run a worker until it stops (idle timeout, walltime) or is cancelled, like
        ``jobstream worker``; returns it (jobs run, why it stopped)."""
        tune_for_throughput()
        worker = Worker(
            self.conn, options or WorkerOptions.from_settings(self.settings, local_capacity())
        )
        await worker.run()
        return worker

    async def workers(self, *, stopped: bool = False) -> list[WorkerView]:
        """Every worker as its latest heartbeat shows it (capacity, load, running jobs,
        ``lost`` when the heartbeats stopped); with ``stopped``, also those that stopped
        cleanly: ``jobstream workers``."""
        return await worker_views(self.conn, time.time(), stopped=stopped)


__all__ = ["Client"]


class SubmitterClient(_Session[Submitter]):
    """A submitter's connection (use as ``async with``): the operations open to them,
    on their own workflows, asked of the server's submitter service.

        async with SubmitterClient("alice.json") as me:
            wf = await me.submit("sweep.yaml")
            print(await me.status(wf))
    """

    def __init__(
        self, creds: str | Path, nats_url: str | None = None, *, state_dir: str | Path | None = None
    ) -> None:
        self.settings = load_settings(nats_url=nats_url, state_dir=state_dir, creds=creds)
        super().__init__()

    async def __aenter__(self) -> SubmitterClient:
        url, tls = submitter_url(self.settings), tls_of(self.settings)
        self._opened = await self._stack.enter_async_context(submitter_session(url, tls=tls))
        return self

    @property
    def me(self) -> Submitter:
        return self._session()

    async def submit(self, spec: Spec, *, workdir: str | None = None) -> str:
        """Submit a spec file or an expanded workflow; returns the workflow id."""
        workflow = _workflow(spec, self.settings.max_jobs)
        return await self.me.submit(workflow, workdir or os.getcwd())

    async def cancel(
        self, wf: str, jobs: list[int] | None = None, *, reason: str = "canceled by user"
    ) -> CancelResult:
        return await self.me.cancel(wf, jobs, reason)

    async def restart(self, wf: str) -> list[int]:
        """Run your workflow's failed, timed-out and canceled jobs again; which."""
        return await self.me.restart(wf)

    async def wait(self, wf: str) -> WorkflowStatus:
        """Wait until your workflow has finished; its status (polled)."""
        return await self.me.follow(wf)

    async def explain(self, wf: str, job: int | str) -> list[str]:
        """Why one of your jobs (index or name) is or is not running, in sentences."""
        return await self.me.explain(wf, job)

    async def status(self, wf: str | None = None) -> list[WorkflowStatus]:
        """Your workflows' statuses (or one of them)."""
        return await self.me.statuses(wf)

    async def events(self, wf: str, job: int | None = None) -> list[dict[str, object]]:
        """A workflow's (or one job's) recorded events, as ``jobstream events --json``."""
        return [row async for rows in self.me.events(wf, job) for row in rows]

    async def sql(self, query: str, *, arrow: bool = False) -> Any:
        """Rows of your workflows only, as dicts (or a ``pyarrow.Table``)."""
        table = await self.me.sql(query)
        return table if arrow else table.to_pylist()
