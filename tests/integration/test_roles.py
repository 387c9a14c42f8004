"""Roles, enforced by nats-server with the configuration jobstream generates: each
hostile attempt is refused (a permissions violation, or the submitter service's
refusal) and leaves nothing in the log."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS

from jobstream import Client, SubmitterClient, codec
from jobstream.config import Settings
from jobstream.errors import JobstreamError
from jobstream.events import JobCompleted, JobStarted, JobSubmitted, WorkflowSubmitted
from jobstream.gateway.client import Submitter, submitter_session
from jobstream.gateway.protocol import ReadEvents, operation_subject
from jobstream.gateway.service import Gateway
from jobstream.host import accounts, users
from jobstream.host.embedded import apply_users, embedded
from jobstream.model import Resources
from jobstream.projections.service import Projector
from jobstream.scheduler.service import Scheduler
from jobstream.streams.connection import Connection, open_connection
from jobstream.streams.store import Stored
from jobstream.streams.subjects import (
    EVENTS_STREAM,
    JOBS_BUCKET,
    SQL_SUBJECT,
    job_event_subject,
    job_subjects,
    kv_subject,
    workflow_subjects,
)
from jobstream.streams.urls import with_user
from jobstream.views.audit import wait_in_log
from jobstream.views.workers import worker_views
from jobstream.workers.context import WorkerOptions
from jobstream.workers.service import Worker

from .helpers import workflow


@dataclass
class Site:
    url: str  # without a login
    admin: Connection
    state: Path
    logins: dict[str, users.User]

    def url_of(self, name: str) -> str:
        user = self.logins[name]
        return with_user(self.url, user.name, user.password)

    async def events_stored(self) -> int:
        return int((await self.admin.js.stream_info(EVENTS_STREAM)).state.messages)


@contextlib.asynccontextmanager
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """A server with its services, two submitters, and a worker with compute rights."""
    state = tmp_path / "state"
    async with embedded(state) as server:
        logins = {
            name: accounts.add(state, name, role).user
            for name, role in (("alice", "submitter"), ("bob", "submitter"), ("node", "compute"))
        }
        apply_users(state)
        settings = Settings(state_dir=state, nats_url=server.url)
        options = WorkerOptions(capacity=Resources(num_cpus=2, memory_mib=1024), log_dir=tmp_path)
        found = Site(server.url, None, state, logins)  # type: ignore[arg-type]
        async with (
            open_connection(server.dial_url, upgrade=print) as admin,  # the server's own
            open_connection(found.url_of("node")) as compute,
            anyio.create_task_group() as tg,
        ):
            found.admin = admin
            await tg.start(Scheduler(admin, 30.0).run)
            await tg.start(Gateway(admin, settings).run)
            await tg.start(Projector(admin, settings.db_path()).run)
            await tg.start(Worker(compute, options).run)
            yield found
            tg.cancel_scope.cancel()


class Refusals:
    """What the server reports to a plain client (nats-py hands it to a callback)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def report(self, exc: Exception) -> None:
        self.seen.append(str(exc))

    async def wait_for(self, text: str) -> None:
        with anyio.fail_after(5):
            while not any(text in seen for seen in self.seen):
                await anyio.sleep(0.02)


@contextlib.asynccontextmanager
async def plain(url: str, refusals: Refusals, prefix: str = "_INBOX") -> AsyncIterator[NATS]:
    nc = await nats.connect(
        url, error_cb=refusals.report, allow_reconnect=False, max_reconnect_attempts=0,
        inbox_prefix=prefix,
    )  # fmt: skip
    try:
        yield nc
    finally:
        await nc.close()


def forged_job(wf: str) -> JobSubmitted:
    spec = workflow(("evil", "touch /tmp/jobstream-forged", ())).jobs[0]
    return JobSubmitted(wf=wf, job=0, at=time.time(), actor="user:alice", spec=spec)


async def test_a_compute_identity_runs_work_but_never_submits(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        async with submitter_session(s.url_of("alice")) as alice:
            wf = await alice.submit(workflow(("a", "true", ()), ("b", "true", (0,))), ".")
        with anyio.fail_after(30):
            assert (await wait_in_log(s.admin, wf)).succeeded()  # run by the compute worker
        before = await s.events_stored()
        refusals = Refusals()
        async with plain(s.url_of("node"), refusals, "_INBOX.node") as nc:
            js = nc.jetstream(timeout=1)
            forged = forged_job("forged0000000")
            await nc.publish(job_event_subject(forged.wf, 0, "JobSubmitted"), codec.encode(forged))
            await refusals.wait_for('publish to "ev.forged0000000.job.0.jobsubmitted"')
            opened = msgspec.json.encode(WorkflowSubmitted(
                wf="forged0000000", at=0.0, actor="user:x", name="x", user="alice",
                spec_digest="", job_count=1,
            ))  # fmt: skip
            await nc.publish(workflow_subjects("forged0000000")[:-1] + "WorkflowSubmitted", opened)
            await refusals.wait_for("workflowsubmitted")
            with pytest.raises(nats.errors.TimeoutError):  # no answer: the API is not theirs
                await js.delete_stream(EVENTS_STREAM)
            await refusals.wait_for("$js.api.stream.delete.events")
            with pytest.raises(nats.errors.TimeoutError):
                await js.purge_stream(EVENTS_STREAM)
            # A completion it may publish, but not on a job it does not hold: the log's
            # optimistic concurrency refuses a stale one (see docs/security.md for why a
            # compute identity is otherwise trusted with the attempts of its pool).
            done = JobCompleted(wf=wf, job=0, at=time.time(), actor="worker:x", attempt=1,
                                worker="x", return_code=0, exec_time_s=0.0)  # fmt: skip
            with pytest.raises(nats.js.errors.APIError, match="wrong last sequence"):
                await js.publish(
                    job_event_subject(wf, 0, "JobCompleted"), codec.encode(done),
                    headers={"Nats-Expected-Last-Subject-Sequence": "1",
                             "Nats-Expected-Last-Subject-Sequence-Subject": f"ev.{wf}.job.0.*"},
                )  # fmt: skip
        assert await s.events_stored() == before
        assert not Path("/tmp/jobstream-forged").exists()


async def test_a_compute_identity_puts_its_heartbeat_and_no_other_key(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        with anyio.fail_after(10):
            while not (found := await worker_views(s.admin, time.time())):
                await anyio.sleep(0.2)
        assert [view.beat.capacity.num_cpus for view in found] == [2]
        refusals = Refusals()
        async with plain(s.url_of("node"), refusals, "_INBOX.node") as nc:
            await nc.publish(kv_subject(JOBS_BUCKET, "wf0.0"), b"{}")
            await refusals.wait_for('publish to "$kv.jobs.wf0.0"')


async def test_a_submitter_reaches_nothing_but_its_own_workflows(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        async with submitter_session(s.url_of("bob")) as bob:
            bobs = await bob.submit(workflow(("b", "sleep 30", ())), ".")
        await _started(s.admin, bobs)  # nothing more is written until it ends
        refusals = Refusals()
        async with plain(s.url_of("alice"), refusals, "_INBOX.alice") as nc:
            js = nc.jetstream(timeout=1)
            before = await s.events_stored()
            forged = forged_job(bobs)
            await nc.publish(job_event_subject(bobs, 0, "JobSubmitted"), codec.encode(forged))
            await refusals.wait_for("permissions violation for publish to")
            with pytest.raises(nats.errors.TimeoutError):  # no JetStream at all
                await js.get_last_msg(EVENTS_STREAM, f"ev.{bobs}.>")
            await nc.subscribe("_INBOX.>")  # everyone's answers: refused
            await refusals.wait_for('subscription to "_inbox.>"')
            await nc.publish(SQL_SUBJECT, b'{"sql": "select 1"}')  # the projector directly
            await refusals.wait_for('publish to "jobstream.sql"')
            await nc.publish(operation_subject("bob", "events"), b"{}")  # as bob
            await refusals.wait_for('publish to "jobstream.api.bob.events"')
            # An answer pointed at the log (the service may publish anywhere) is not sent.
            request = msgspec.json.encode(ReadEvents(bobs))
            await nc.publish(
                operation_subject("alice", "events"), request, reply=f"ev.{bobs}.job.0.JobCompleted"
            )
            await nc.flush()
            await anyio.sleep(0.5)
            assert await s.events_stored() == before

        async with submitter_session(s.url_of("alice")) as alice:
            mine = await alice.submit(workflow(("a", "true", ())), ".")
            with pytest.raises(JobstreamError, match=r"no workflow .* of yours"):
                [rows async for rows in alice.events(bobs, None)]
            with pytest.raises(JobstreamError, match=r"no workflow .* of yours"):
                await alice.cancel(bobs, None, "mine now")
            with pytest.raises(JobstreamError, match=r"no workflow .* of yours"):
                await alice.statuses(bobs)
            with pytest.raises(JobstreamError, match="no operation 'drop'"):
                await alice.one("drop", b"{}")
            with pytest.raises(JobstreamError, match="malformed"):
                await alice.one("open", b"\x00garbage")
            sweep = WorkflowSubmitted(
                wf="x", at=0.0, actor="user:x", name="huge", user="x", spec_digest="",
                job_count=10**12,
            )  # fmt: skip
            with pytest.raises(JobstreamError, match="takes at most"):
                await alice.one("open", msgspec.json.encode(sweep))
            with anyio.fail_after(30):
                await wait_in_log(s.admin, mine)
            await _projected(alice, mine)
            assert [s.wf for s in await alice.statuses(None)] == [mine]
            for table in ("jobs", "main.jobs", "events", "workflows", "attempts"):
                seen = await alice.sql(f"SELECT DISTINCT wf FROM {table}")
                assert seen.column("wf").to_pylist() == [mine], table
            owners = await alice.sql("SELECT DISTINCT user FROM workflows")
            assert owners.column("user").to_pylist() == ["alice"]  # the service's, not hers
        creds = tmp_path / "bob.json"
        bob_login = s.logins["bob"]
        creds.write_text(
            json.dumps({"user": "bob", "password": bob_login.password, "role": "submitter"})
        )
        async with SubmitterClient(creds, s.url, state_dir=tmp_path / "elsewhere") as client:
            assert [s.wf for s in await client.status()] == [bobs]
            assert (await client.cancel(bobs, reason="done")).canceled == [0]  # his own
            assert (await client.events(bobs, 0))[-1]["type"] == "JobCanceled"
        with pytest.raises(JobstreamError, match="use jobstream\\.SubmitterClient"):
            async with Client(s.url, creds=creds):
                pass


async def _started(conn: Connection, wf: str) -> None:
    with anyio.fail_after(30):
        while True:
            last = await conn.store.last(job_subjects(wf, 0))
            if isinstance(last, Stored) and isinstance(last.event, JobStarted):
                return
            await anyio.sleep(0.05)


async def _projected(submitter: Submitter, wf: str) -> None:
    with anyio.fail_after(30):
        while not (await submitter.sql(f"SELECT 1 FROM jobs WHERE wf = '{wf}'")).num_rows:
            await anyio.sleep(0.1)


async def test_a_revoked_user_is_refused_and_disconnected(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        refusals = Refusals()
        async with plain(s.url_of("alice"), refusals, "_INBOX.alice") as nc:
            users.revoke(s.state, "alice")
            assert apply_users(s.state)  # the running server re-reads its users
            with anyio.fail_after(5):
                while nc.is_connected:
                    await anyio.sleep(0.02)
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(s.url_of("alice"), allow_reconnect=False, max_reconnect_attempts=0)
        async with submitter_session(s.url_of("bob")) as bob:  # the others are untouched
            assert await bob.statuses(None) == []
