"""End to end in one process: submit, schedule, run real commands, fold the log."""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec
import pytest

from jobstream.config import Settings
from jobstream.host.local import run_local
from jobstream.model import Resources
from jobstream.streams.connection import open_connection
from jobstream.streams.urls import public
from jobstream.workers.context import WorkerOptions

from .helpers import histories, types, workflow


def options(tmp_path: Path, cpus: int = 2) -> WorkerOptions:
    return WorkerOptions(
        capacity=Resources(num_cpus=cpus, memory_mib=4096), log_dir=tmp_path / "logs", lease_s=5.0
    )


async def test_diamond_runs_in_order_with_full_histories(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = workflow(
        ("pre", "echo a > a.txt", ()),
        ("left", "cat a.txt > b.txt; echo left >> b.txt", (0,)),
        ("right", "cat a.txt > c.txt; echo right >> c.txt", (0,)),
        ("post", "cat b.txt c.txt > d.txt", (1, 2)),
    )
    outcome = await run_local(settings, spec, options(tmp_path))
    assert outcome.summary.succeeded
    assert (tmp_path / "d.txt").read_text() == "a\nleft\na\nright\n"
    assert settings.nats_url and outcome.url == public(settings.nats_url)  # no password shown
    async with open_connection(settings.nats_url) as conn:
        found = await histories(conn, outcome.wf)
    full = ["JobSubmitted", "JobReady", "JobClaimed", "JobStarted", "JobCompleted"]
    assert types(found[0]) == full
    for n in (1, 2, 3):
        assert types(found[n]) == [*full[:1], "JobBlocked", *full[1:]]
    started = {n: e for n, evs in found.items() for e in evs if type(e).__name__ == "JobStarted"}
    ended = {n: e for n, evs in found.items() for e in evs if type(e).__name__ == "JobCompleted"}
    assert ended[0].at <= started[1].at and ended[0].at <= started[2].at
    assert max(ended[1].at, ended[2].at) <= started[3].at
    assert all(e.attempt == 1 and e.return_code == 0 for e in ended.values())


async def test_failure_cancels_dependents_and_reports_logs(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = workflow(
        ("ok", "true", ()),
        ("bad", "echo boom >&2; exit 3", (0,)),
        ("after", "touch never", (1,)),
        ("other", "true", ()),
    )
    outcome = await run_local(settings, spec, options(tmp_path))
    summary = outcome.summary
    assert not summary.succeeded
    counts = {k: v for k, v in summary.counts.items() if v}
    assert counts == {"completed": 2, "failed": 1, "canceled": 1}
    problems = {p.name: p for p in summary.problems}
    assert problems["bad"].return_code == 3
    assert Path(problems["bad"].stderr).read_text() == "boom\n"
    assert problems["after"].reason == "dependency 'bad' failed"
    assert not (tmp_path / "never").exists()


async def test_sweep_of_many_jobs_on_small_worker(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = workflow(*((f"j{i}", f"echo {i} > out{i}.txt", ()) for i in range(100)))
    outcome = await run_local(settings, spec, options(tmp_path, cpus=3))
    assert outcome.summary.counts["completed"] == 100
    assert sorted(int((tmp_path / f"out{i}.txt").read_text()) for i in range(100)) == list(
        range(100)
    )


async def test_empty_class_does_not_starve_another(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a worker polling an empty class held all capacity while it waited."""
    monkeypatch.chdir(tmp_path)
    first = workflow(("a", "true", ()))
    assert (await run_local(settings, first, options(tmp_path, cpus=1))).summary.succeeded
    other_class = Resources(num_cpus=1, memory_mib=32, runtime_s=30)
    second = workflow(("b1", "true", ()), ("b2", "true", (0,)))
    second = msgspec.structs.replace(
        second,
        jobs=tuple(msgspec.structs.replace(j, resources=other_class) for j in second.jobs),
    )
    with anyio.fail_after(20):
        outcome = await run_local(settings, second, options(tmp_path, cpus=1))
    assert outcome.summary.succeeded


async def test_job_past_its_runtime_is_timed_out_not_failed(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    quick = Resources(num_cpus=1, memory_mib=64, runtime_s=1)
    spec = workflow(
        ("polite", "sleep 30", ()),
        ("stubborn", "trap '' TERM; sleep 30", ()),  # ignores SIGTERM: needs SIGKILL
        ("after", "true", (0,)),
    )
    spec = msgspec.structs.replace(
        spec, jobs=tuple(msgspec.structs.replace(j, resources=quick) for j in spec.jobs)
    )
    opts = options(tmp_path)
    opts.term_grace_s = 0.5
    began = anyio.current_time()
    with anyio.fail_after(20):
        outcome = await run_local(settings, spec, opts)
    assert anyio.current_time() - began < 10
    problems = {p.name: p for p in outcome.summary.problems}
    assert problems["polite"].state == "timed_out" and problems["polite"].return_code == -15
    assert problems["stubborn"].state == "timed_out" and problems["stubborn"].return_code == -9
    assert problems["after"].reason == "dependency 'polite' timed_out"
