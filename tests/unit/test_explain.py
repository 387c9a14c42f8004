"""explain's pure part: one sentence per reason a job is where it is."""

from __future__ import annotations

from jobstream.events import JobBlocked, JobClaimed, JobFailed, JobReady
from jobstream.model import JobDef, Resources
from jobstream.ops.explain import Dependency, reasons

GPU = JobDef(index=1, name="train", command="true", resources=Resources(num_cpus=2, num_gpus=2))
IDS = {"wf": "w", "job": 1, "at": 100.0, "actor": "scheduler"}


def test_blocked_names_unfinished_dependencies() -> None:
    deps = [Dependency(0, "prep", "running"), Dependency(2, "fetch", "completed")]
    lines = reasons(GPU, JobBlocked(**IDS, unmet=(0,)), deps, None, 110.0)
    assert lines == ["waiting for dependency 'prep' (job 0), which is running"]


def test_ready_without_a_fitting_worker_says_what_is_missing() -> None:
    ready = JobReady(**IDS, pool="default", hardware_class=GPU.resources.hardware_class())
    lines = reasons(GPU, ready, [], [Resources(num_cpus=8, memory_mib=64000)], 130.0)
    assert lines[0].startswith("ready since 30 s")
    assert lines[1] == "no running worker has 2 GPUs (largest worker: 0)"
    assert reasons(GPU, ready, [], [], 130.0)[1] == "no worker is running"
    fits = [Resources(num_cpus=8, memory_mib=64000, num_gpus=4)]
    assert "queued behind other work" in reasons(GPU, ready, [], fits, 130.0)[1]


def test_claimed_and_failed() -> None:
    claimed = JobClaimed(**IDS, worker="n1", attempt=2, lease_s=30)
    assert reasons(GPU, claimed, [], None, 105.0) == [
        "claimed on n1 (attempt 2) for 5 s; its lease is renewed while the process runs"
    ]
    failed = JobFailed(**IDS, worker="n1", attempt=2, return_code=3, exec_time_s=1.0)
    assert reasons(GPU, failed, [], None, 105.0) == ["failed: attempt 2 on n1 returned 3"]
