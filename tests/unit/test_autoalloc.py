"""Autoalloc's decisions: which scheduler a class goes to, how many allocations the
backlog gets within the limits, and the waits after failed submissions."""

from __future__ import annotations

import pytest

from jobstream.errors import ConfigError
from jobstream.model import Resources
from jobstream.slurm.autoalloc import (
    Backoff,
    Limits,
    OpenAllocation,
    offer_of,
    offers_of,
    plan,
)
from jobstream.slurm.script import SlurmScheduler
from jobstream.spec.extras import actions_enable
from jobstream.spec.units import gres_gpus, slurm_mem_mib

CPU = SlurmScheduler(name="cpu", account="a", walltime="01:00:00", mem="8g")
GPU = SlurmScheduler(name="gpu", account="a", walltime="01:00:00", gres="gpu:2")
PAIR = SlurmScheduler(name="pair", account="a", walltime="01:00:00", nodes=2)
OFFERS = (offer_of(GPU), offer_of(CPU))


def cls(cpus: int = 1, mib: int = 1024, gpus: int = 0, runtime: int = 600) -> str:
    return Resources(
        num_cpus=cpus, memory_mib=mib, num_gpus=gpus, runtime_s=runtime
    ).hardware_class()


def test_what_a_scheduler_offers_is_read_as_slurm_writes_it() -> None:
    assert [gres_gpus(g) for g in (None, "gpu", "gpu:2", "gpu:a100:3", "tmp:1,gpu:2")] == [
        0, 1, 2, 3, 2,
    ]  # fmt: skip
    assert [slurm_mem_mib(m) for m in (None, "4000", "8g", "0")] == [None, 4000, 8192, None]
    with pytest.raises(ValueError, match="cannot read GPUs"):
        gres_gpus("gpu:a:b:c")
    with pytest.raises(ConfigError, match="slurm scheduler 'bad'"):
        offer_of(SlurmScheduler(name="bad", account="a", walltime="soon"))


def test_each_class_goes_to_the_smallest_scheduler_that_runs_it() -> None:
    backlog = {cls(): 3, cls(gpus=1): 2, cls(mib=16384): 1, cls(runtime=7200): 1}
    decided = plan(backlog, OFFERS, [], Limits(max_queued=10, max_nodes=10))
    # CPU jobs to the CPU scheduler although the GPU one could run them; the 16 GiB jobs
    # to the GPU one (its memory is not limited); a 2 h job to nobody (walltime 1 h).
    assert sorted(decided.submit) == ["cpu", "cpu", "cpu", "gpu", "gpu", "gpu"]
    assert decided.unserved == [cls(runtime=7200)]


def test_no_backlog_no_allocation_and_queued_ones_count_against_it() -> None:
    assert plan({cls(): 0}, OFFERS, [], Limits()).submit == []
    queued = [OpenAllocation("cpu", 1, started=False)]
    assert plan({cls(): 1}, OFFERS, queued, Limits()).submit == []  # one waits for it already
    running = [OpenAllocation("cpu", 1, started=True)]
    assert plan({cls(): 1}, OFFERS, running, Limits()).submit == ["cpu"]


def test_limits_bound_queued_allocations_nodes_and_allocations() -> None:
    backlog = {cls(): 100}
    assert plan(backlog, OFFERS, [], Limits(max_queued=2)).submit == ["cpu", "cpu"]
    running = [OpenAllocation("cpu", 1, started=True)] * 3
    assert plan(backlog, OFFERS, running, Limits(max_queued=5, max_nodes=4)).submit == ["cpu"]
    assert plan(backlog, OFFERS, running, Limits(max_allocations=3)).submit == []
    pairs = (offer_of(PAIR),)
    assert plan(backlog, pairs, [], Limits(max_queued=5, max_nodes=5)).submit == ["pair"] * 2
    capped = plan(backlog, OFFERS, running, Limits(max_queued=5, max_nodes=9), {"cpu": 4})
    assert capped.submit == ["cpu"]  # 3 open + 1


def test_schedulers_take_turns_in_the_queue() -> None:
    backlog = {cls(): 50, cls(gpus=1): 5}
    assert plan(backlog, OFFERS, [], Limits(max_queued=2)).submit == ["gpu", "cpu"]


def test_a_spec_turns_autoalloc_on_with_schedule_nodes_actions_on_jobs_ready() -> None:
    extras = {
        "slurm_schedulers": [{"name": "cpu", "account": "a"}, {"name": "gpu", "account": "a"}],
        "actions": [
            {"trigger_type": "on_jobs_ready", "action_type": "schedule_nodes",
             "scheduler": "gpu", "scheduler_type": "slurm", "num_allocations": 2},
            {"trigger_type": "on_workflow_start", "action_type": "schedule_nodes",
             "scheduler": "cpu", "scheduler_type": "slurm"},
            {"trigger_type": "on_jobs_ready", "action_type": "run_commands", "commands": ["x"]},
        ],
    }  # fmt: skip
    assert actions_enable(extras) == {"gpu": 2}
    assert actions_enable({}) == {}
    assert [o.scheduler.name for o in offers_of(extras, "wf1", [])] == ["cpu", "gpu"]
    with pytest.raises(ConfigError, match="has no slurm scheduler 'big'"):
        offers_of(extras, "wf1", ["big"])
    with pytest.raises(ConfigError, match="no slurm_schedulers"):
        offers_of({}, "wf1", [])


def test_failed_submissions_wait_longer_each_time_up_to_the_most() -> None:
    backoff = Backoff(Limits(backoff_s=10, max_backoff_s=25))
    assert backoff.ready(0.0)
    assert [backoff.failed(0.0) for _ in range(3)] == [10, 20, 25]
    assert not backoff.ready(24.0) and backoff.ready(25.0)
    backoff.succeeded()
    assert backoff.ready(0.0) and backoff.failed(0.0) == 10


@pytest.mark.parametrize(
    ("limits", "named"),
    [
        (Limits(max_queued=0), "max-queued"),
        (Limits(max_nodes=-1), "max-nodes"),
        (Limits(max_allocations=0), "max-allocations"),
        (Limits(backoff_s=0), "backoff"),
    ],
)
def test_limits_out_of_range_are_refused(limits: Limits, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        limits.checked()
