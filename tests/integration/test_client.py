"""The Python client does what the CLI does, against a real server: run, status, explain,
events by name, SQL now and as of a sequence, restart, cancel, rebuild, serve and work."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from jobstream import Client
from jobstream.config import Settings
from jobstream.model import Resources
from jobstream.projections.records import WorkflowStatus
from jobstream.streams.subjects import EVENTS_STREAM
from jobstream.workers.context import WorkerOptions

from .helpers import workflow

SPEC = workflow(("ok", "true", ()), ("bad", "exit 3", ()), ("after", "true", (1,)))


def options(tmp_path: Path, idle_timeout_s: float = 0.0) -> WorkerOptions:
    return WorkerOptions(
        capacity=Resources(num_cpus=2, memory_mib=1024),
        log_dir=tmp_path / "logs",
        idle_timeout_s=idle_timeout_s,
    )


async def test_the_client_runs_looks_and_acts_like_the_cli(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Client.check(SPEC)["jobs"] == 3
    async with Client(settings=settings) as client:
        outcome = await client.run(SPEC, options(tmp_path))
        wf = outcome.wf
        assert not outcome.summary.succeeded
        watched = [change async for change in client.watch()]  # the latest workflow
        assert isinstance(watched[-1], WorkflowStatus) and watched[-1].wf == wf
        (status,) = await client.status(wf)
        assert status.counts == {"completed": 1, "failed": 1, "canceled": 1}
        assert [p.name for p in status.problems] == ["bad", "after"]
        assert (await client.explain(wf, "bad"))[0].endswith("returned 3")
        bad = [type(s.event).__name__ for s in await client.events(wf, "bad")]
        assert bad[0] == "JobSubmitted" and bad[-1] == "JobFailed"
        assert (await client.sql("select count(*) AS n from events", as_of="4"))[0]["n"] == 4
        assert sorted(await client.restart(wf)) == [1, 2]
        canceled = await client.cancel(wf)
        assert sorted(canceled.canceled) == [1, 2] and canceled.already_finished == [0]
        rebuilt = await client.rebuild()
        last = (await client.conn.js.stream_info(EVENTS_STREAM)).state.last_seq
        assert rebuilt["events"] == last
        assert client.config()["nats_url"] == (settings.nats_url, "command line")


async def test_the_client_serves_and_works(settings: Settings, tmp_path: Path) -> None:
    async with Client(settings=settings) as client, anyio.create_task_group() as tg:
        await tg.start(client.serve)
        side_by_side = [(f"c{i}", "true", ()) for i in range(20)]  # counted as they end
        wf = await client.submit(
            workflow(("a", "true", ()), ("b", "true", (0,)), *side_by_side),
            workdir=str(tmp_path),
        )
        worker = await client.work(options(tmp_path, idle_timeout_s=2.0))
        assert worker.jobs_run == 22 and worker.stop_reason == "idle"
        assert (await client.wait(wf)).succeeded
        tg.cancel_scope.cancel()
