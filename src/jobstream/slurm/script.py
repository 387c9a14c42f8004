"""The batch script of one allocation: pure text from the scheduler's settings.

The ``#SBATCH`` lines come from the spec's scheduler (``account``, ``partition``,
``qos``, ``nodes``, ``walltime``, ``gres``, ``mem``, ``tmp``, ``ntasks_per_node``) and
``slurm_defaults``; ``extra`` is passed as written. The body starts one worker per node,
offering what Slurm gave the allocation (``SLURM_CPUS_ON_NODE``, ``SLURM_MEM_PER_NODE``,
``SLURM_GPUS_ON_NODE``) for the time the allocation has left (``squeue %L`` at its
start, else the scheduler's walltime), logged in with the allocation's own
credentials, until it has had no work for a while.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import msgspec

from jobstream.errors import ConfigError
from jobstream.spec.extras import sbatch_problem
from jobstream.spec.units import slurm_time_seconds


class SlurmScheduler(msgspec.Struct, kw_only=True, frozen=True):
    """One entry of the spec's ``slurm_schedulers`` (as kept in the workflow's extras)."""

    name: str
    account: str
    walltime: str = "01:00:00"
    nodes: int = 1
    partition: str | None = None
    qos: str | None = None
    gres: str | None = None
    mem: str | None = None
    tmp: str | None = None
    ntasks_per_node: int | None = None
    extra: str | None = None

    def walltime_s(self) -> float:
        """Its walltime in seconds, read as Slurm reads ``--time``; ConfigError if not."""
        try:
            return slurm_time_seconds(self.walltime)
        except ValueError as exc:
            raise ConfigError(f"slurm scheduler {self.name!r}: {exc}") from None


def scheduler_named(extras: dict[str, Any], name: str, wf: str) -> SlurmScheduler:
    """The workflow's scheduler of this name; a one-line error naming the ones it has."""
    entries = extras.get("slurm_schedulers") or []
    names = [str(entry.get("name")) for entry in entries]
    for entry in entries:
        if entry.get("name") == name:
            known = {k: v for k, v in entry.items() if k in SlurmScheduler.__struct_fields__}
            return msgspec.convert(known, SlurmScheduler)
    have = ", ".join(names) if names else "none: its spec has no slurm_schedulers"
    raise ConfigError(f"workflow {wf} has no slurm scheduler {name!r} (it has {have})")


def sbatch_lines(scheduler: SlurmScheduler, defaults: dict[str, Any]) -> list[str]:
    """The ``#SBATCH`` options: the scheduler's, then the spec's ``slurm_defaults``."""
    options: dict[str, object] = {
        "account": scheduler.account,
        "nodes": scheduler.nodes,
        "time": scheduler.walltime,
        "partition": scheduler.partition,
        "qos": scheduler.qos,
        "gres": scheduler.gres,
        "mem": scheduler.mem,
        "tmp": scheduler.tmp,
        "ntasks-per-node": scheduler.ntasks_per_node,
    }
    for key, value in defaults.items():
        options.setdefault(key.replace("_", "-"), value)
    # Checked at submission, and again here: a stored spec may predate the checks.
    for key, value in {**options, "extra": scheduler.extra}.items():
        problem = None if value is None else sbatch_problem(key, value)
        if problem:
            raise ConfigError(f"slurm scheduler {scheduler.name!r}: {problem}")
    lines = [f"#SBATCH --{key}={value}" for key, value in options.items() if value is not None]
    if scheduler.extra:
        lines.append(f"#SBATCH {scheduler.extra}")
    return lines


def batch_script(
    scheduler: SlurmScheduler,
    defaults: dict[str, Any],
    *,
    job_name: str,
    folder: Path,
    jobstream: list[str],
    creds: Path,
    idle_timeout_s: float,
) -> str:
    """The whole script; ``jobstream`` is the command that runs jobstream there. The
    worker gives the allocation back after ``idle_timeout_s`` without work."""
    worker = [
        *jobstream, "--creds", str(creds), "worker", "--idle-timeout", f"{idle_timeout_s:g}",
        "--log-dir", str(folder / "logs"),
    ]  # fmt: skip
    command = shlex.join(worker)
    resources = (
        '--walltime "$left" --cpus "$SLURM_CPUS_ON_NODE" --gpus "${SLURM_GPUS_ON_NODE:-0}" '
        '${SLURM_MEM_PER_NODE:+--memory "${SLURM_MEM_PER_NODE}m"}'
    )
    start = f"{command} {resources}"
    walltime = f"{scheduler.walltime_s():.0f}"  # seconds: a bare number to the worker
    if scheduler.nodes > 1:  # one worker per node
        start = f"srun --nodes=$SLURM_JOB_NUM_NODES --ntasks-per-node=1 {start}"
    return "\n".join(
        [
            "#!/bin/bash",
            f"#SBATCH --job-name={job_name}",
            f"#SBATCH --output={folder}/slurm-%j.out",
            *sbatch_lines(scheduler, defaults),
            "# written by `jobstream slurm schedule-nodes`: one jobstream worker per node",
            "set -eu",
            f"cd {shlex.quote(str(folder))}",
            "# the time this allocation has left, as Slurm counts it (its walltime if unknown)",
            'left=$(squeue -h -j "$SLURM_JOB_ID" -o %L 2>/dev/null || true)',
            f'case "$left" in *[0-9]:[0-9][0-9]) ;; *) left={walltime} ;; esac',
            f"exec {start}" if scheduler.nodes == 1 else start,
            "",
        ]
    )
