"""``schedule-nodes``: write and submit allocations that run jobstream workers.

Each allocation gets a folder of its own under ``STATE_DIR/slurm/`` (mode 0700) with its
batch script, its Slurm output and its credentials: a compute identity made for it
alone (``alloc-<token>``, file mode 0600), never a submitter's. A submission that fails
takes its identity and folder back with it: nothing half made is left. One that sbatch
took is recorded as ``SlurmAllocationSubmitted``; the server's watcher records the rest
(:mod:`jobstream.slurm.watch`) and retires the identity of each allocation that ended
(:func:`retire`), and of one left unrecorded by a submitter killed midway
(:func:`orphans`).
"""

from __future__ import annotations

import contextlib
import getpass
import math
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec

from jobstream.config import Settings
from jobstream.errors import ConfigError, JobstreamError
from jobstream.events import SlurmAllocationSubmitted
from jobstream.host import accounts, users
from jobstream.ops.identity import user_actor
from jobstream.ops.workflows import submitted_workflow
from jobstream.slurm.script import batch_script, scheduler_named
from jobstream.streams.connection import Connection
from jobstream.streams.subjects import checked_workflow
from jobstream.views.sql import run_sql

SLURM_DIR = "slurm"
JOBSTREAM = [sys.executable, "-m", "jobstream"]  # the same installation, on the nodes
SBATCH_TIMEOUT_S = 60.0
IDLE_TIMEOUT_S = 60.0
MAX_ALLOCATIONS = 1000  # per schedule-nodes: more is a typo, not a plan
IDENTITY_PREFIX = "alloc-"
ORPHAN_AGE_S = 600.0  # an identity this old without a recorded allocation is left over


class Allocation(msgspec.Struct, frozen=True):
    """One allocation as written (and submitted: its Slurm job id)."""

    wf: str
    scheduler: str
    identity: str
    folder: str
    script: str
    slurm_job_id: str | None


async def schedule_nodes(
    conn: Connection,
    settings: Settings,
    wf: str,
    scheduler: str,
    count: int,
    submit: bool,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
) -> list[Allocation]:
    """Write ``count`` allocations of the workflow's scheduler; submit them unless not
    ``submit`` (a dry run: the scripts are written, no identity is made). Their workers
    exit after ``idle_timeout_s`` without work, which ends the allocation."""
    if not 1 <= count <= MAX_ALLOCATIONS:
        raise ConfigError(f"--num {count}: give 1 to {MAX_ALLOCATIONS} allocations")
    if not 0 < idle_timeout_s < math.inf:
        raise ConfigError(f"--idle-timeout {idle_timeout_s:g}: give a number of seconds above 0")
    submitted = await submitted_workflow(conn.store, wf)
    chosen = scheduler_named(submitted.extras, scheduler, wf)
    walltime_s = chosen.walltime_s()
    defaults = submitted.extras.get("slurm_defaults") or {}
    made = []
    for _ in range(count):
        token = secrets.token_hex(4)
        identity = f"{IDENTITY_PREFIX}{token}"
        folder = (settings.state_dir / SLURM_DIR / f"{wf}-{token}").resolve()
        folder.mkdir(parents=True, mode=0o700)
        creds = folder / "worker.json"
        script = folder / "job.sbatch"
        script.write_text(
            batch_script(
                chosen,
                defaults,
                job_name=f"jobstream-{wf}",
                folder=folder,
                jobstream=JOBSTREAM,
                creds=creds,
                idle_timeout_s=idle_timeout_s,
            )
        )
        job_id = None
        if submit:
            await anyio.to_thread.run_sync(
                accounts.add, settings.state_dir, identity, "compute", creds
            )
            try:
                job_id = await sbatch(script)
                submitted_now = SlurmAllocationSubmitted(
                    at=time.time(), actor=user_actor(), allocation=identity,
                    slurm_job_id=job_id, wf=wf, scheduler=chosen.name, nodes=chosen.nodes,
                    walltime_s=walltime_s,
                )  # fmt: skip
                await conn.store.append(submitted_now, 0)
            except BaseException:  # taken back at once, even when cancelled
                if job_id is not None:  # sbatch took it, the log did not: nobody would know it
                    scancel(job_id)
                accounts.revoke(settings.state_dir, identity)
                shutil.rmtree(folder, ignore_errors=True)
                raise
        made.append(Allocation(wf, chosen.name, identity, str(folder), str(script), job_id))
    return made


def retire(state_dir: Path, allocation: str) -> bool:
    """An allocation ended: its identity is revoked (its workers' connections close) and
    its credentials file removed; its folder (script, Slurm output, logs) stays. False
    when there was nothing left to retire."""
    removed = False
    for folder in _folders(state_dir, allocation):
        if (folder / "worker.json").exists():
            (folder / "worker.json").unlink(missing_ok=True)
            removed = True
    if all(user.name != allocation for user in users.load(state_dir)):
        return removed
    accounts.revoke(state_dir, allocation)
    return True


def _folders(state_dir: Path, allocation: str) -> list[Path]:
    """The allocation's folder (``STATE_DIR/slurm/<wf>-<token>``), if it is here."""
    return list((state_dir / SLURM_DIR).glob(f"*-{allocation.removeprefix(IDENTITY_PREFIX)}"))


def orphans(state_dir: Path, recorded: set[str], now: float) -> list[str]:
    """Allocation identities that no allocation was recorded for in ``ORPHAN_AGE_S``:
    their submitter was killed before sbatch answered (or before its answer was
    recorded). Retired like ended ones."""
    return [
        user.name
        for user in users.load(state_dir)
        if user.name.startswith(IDENTITY_PREFIX)
        and user.name not in recorded
        and now - user.added > ORPHAN_AGE_S
    ]


def cancel_unrecorded(state_dir: Path, allocation: str) -> list[str]:
    """The Slurm jobs of an allocation that was never recorded (sbatch took it, its
    answer was lost): found by their script's path in one ``squeue``, and cancelled.
    Their ids; none where Slurm's commands are missing or fail."""
    scripts = {str((folder / "job.sbatch").resolve()) for folder in _folders(state_dir, allocation)}
    if not scripts:
        return []
    command = ["squeue", "-h", "-u", getpass.getuser(), "-o", "%i|%o"]
    try:
        listed = subprocess.run(command, capture_output=True, text=True, timeout=SBATCH_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in listed.stdout.splitlines():
        job, _, script = line.strip().partition("|")
        if script in scripts:
            scancel(job)
            found.append(job)
    return found


def scancel(job: str) -> None:
    """Cancel a Slurm job (nothing if Slurm's commands fail)."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(["scancel", job], capture_output=True, timeout=SBATCH_TIMEOUT_S)


async def sbatch(script: Path) -> str:
    """Submit a batch script; its Slurm job id."""
    try:
        with anyio.fail_after(SBATCH_TIMEOUT_S):
            done = await anyio.run_process(["sbatch", "--parsable", str(script)], check=False)
    except FileNotFoundError:
        raise JobstreamError("sbatch not found: run this where Slurm's commands are") from None
    if done.returncode != 0:
        why = " ".join(done.stderr.decode(errors="replace").split()) or f"exit {done.returncode}"
        raise JobstreamError(f"sbatch {script} failed: {why}")
    return done.stdout.decode().strip().split(";")[0]


async def listed(conn: Connection, settings: Settings, wf: str | None) -> list[dict[str, Any]]:
    """The allocations (of one workflow), from the read models' ``slurm_allocations``."""
    where = "" if wf is None else f" WHERE wf = '{checked_workflow(wf)}'"
    found = await run_sql(conn, settings, f"SELECT * FROM slurm_allocations{where}")
    rows: list[dict[str, Any]] = found.to_pylist()
    return rows
