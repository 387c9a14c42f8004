"""The commands as people on a shared machine use them: an admin adds users, a compute
node runs the work with its own credentials, a submitter works from another directory
with nothing but the file they were given (TLS on)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import anyio

from .processes import jobstream, spawn, stop, wait_for_server

SPEC = """name: mine
jobs:
  - name: a
    command: 'true'
  - name: b
    command: 'true'
    depends_on: [a]
  - name: c
    command: 'false'
"""
ALLOCATING = """slurm_schedulers:
  - {name: cpu, account: project1, walltime: "00:10:00"}
actions:
  - {trigger_type: on_jobs_ready, action_type: schedule_nodes, scheduler_type: slurm,
     scheduler: cpu}
"""


async def test_a_submitter_works_from_anywhere_with_the_file_alone(tmp_path: Path) -> None:
    head, node, home = tmp_path / "head", tmp_path / "node", tmp_path / "home"
    for folder in (head, node, home):
        folder.mkdir()
    server = spawn("server", "--tls", cwd=head, log=tmp_path / "server.log")
    worker = None

    def run(*args: str, cwd: Path = head) -> tuple[int, str, str]:
        done = jobstream(*args, cwd=cwd)
        return done.returncode, done.stdout, done.stderr

    try:
        await anyio.to_thread.run_sync(wait_for_server, head / ".jobstream", server)
        for name, role in (("alice", "submitter"), ("node7", "compute")):
            code, _, err = await anyio.to_thread.run_sync(
                lambda n=name, r=role: run(
                    "users", "add", n, "--role", r, "--out", str(tmp_path / f"{n}.json")
                )
            )
            assert code == 0, err
            assert stat.S_IMODE((tmp_path / f"{name}.json").stat().st_mode) == 0o600
        code, listed, _ = await anyio.to_thread.run_sync(lambda: run("users", "list", "--json"))
        assert [(u["user"], u["role"]) for u in json.loads(listed)][1:] == [
            ("alice", "submitter"), ("node7", "compute"),
        ]  # fmt: skip
        assert "password" not in listed
        worker = spawn("--creds", str(tmp_path / "node7.json"), "worker", "--cpus", "2",
                       cwd=node, log=tmp_path / "worker.log")  # fmt: skip
        (home / "spec.yaml").write_text(SPEC)
        me = ("--creds", str(tmp_path / "alice.json"))
        code, out, err = await anyio.to_thread.run_sync(
            lambda: run(*me, "submit", "spec.yaml", "--wait", "--json", cwd=home)
        )
        assert code == 1, err  # c fails
        summary = json.loads(out)
        wf = summary["workflow"]
        assert summary["counts"]["completed"] == 2 and summary["counts"]["failed"] == 1
        code, out, err = await anyio.to_thread.run_sync(
            lambda: run(*me, "explain", wf, "c", cwd=home)
        )
        assert code == 0 and "failed" in out, err
        code, out, err = await anyio.to_thread.run_sync(
            lambda: run(*me, "restart", wf, "--failed", "--json", cwd=home)
        )
        assert code == 0 and json.loads(out)["restarted"] == [2], err
        code, out, err = await anyio.to_thread.run_sync(
            lambda: run(*me, "watch", wf, "--json", cwd=home)
        )
        assert code == 1 and json.loads(out)["counts"]["failed"] == 1, err  # failed again
        code, out, err = await anyio.to_thread.run_sync(
            lambda: run(*me, "sql", "select count(*) as n from jobs", "-f", "json", cwd=home)
        )
        assert code == 0 and json.loads(out) == [{"n": 3}], err
        code, out, _ = await anyio.to_thread.run_sync(
            lambda: run(*me, "events", wf, "0", "--json", cwd=home)
        )
        kinds = [json.loads(line)["type"] for line in out.splitlines()]
        assert kinds[0] == "JobSubmitted" and kinds[-1] == "JobCompleted"
        assert json.loads(out.splitlines()[0])["actor"] == "user:alice"
        code, _, err = await anyio.to_thread.run_sync(lambda: run(*me, "rebuild", cwd=home))
        assert code == 2 and "not open to submitters" in err
        code, _, err = await anyio.to_thread.run_sync(
            lambda: run(*me, "cancel", "nosuchwf", cwd=home)
        )
        assert code != 0 and "of yours" in err
        # Archived (by the admin): still theirs to read, no longer to change.
        code, _, err = await anyio.to_thread.run_sync(lambda: run(*me, "archive", wf, cwd=home))
        assert code == 2 and "not open to submitters" in err
        code, _, err = await anyio.to_thread.run_sync(lambda: run("archive", wf))
        assert code == 0, err
        code, again, _ = await anyio.to_thread.run_sync(
            lambda: run(*me, "events", wf, "0", "--json", cwd=home)
        )
        assert code == 0 and again == out
        code, _, err = await anyio.to_thread.run_sync(
            lambda: run(*me, "restart", wf, "--failed", cwd=home)
        )
        assert code == 2 and "archived" in err
        code, listed, err = await anyio.to_thread.run_sync(
            lambda: run(*me, "status", wf, "--json", cwd=home)
        )
        assert code == 0 and wf in listed, err
        # Slurm allocations run as the server's user: not for a submitter's spec.
        allocating = SPEC + ALLOCATING
        (home / "nodes.yaml").write_text(allocating)
        code, _, err = await anyio.to_thread.run_sync(
            lambda: run(*me, "submit", "nodes.yaml", cwd=home)
        )
        assert code == 2 and "autoalloc_for_submitters" in err and len(err.splitlines()) == 1
        code, listed, err = await anyio.to_thread.run_sync(
            lambda: run(*me, "status", "--json", cwd=home)
        )
        assert code == 0 and [w["workflow"] for w in json.loads(listed)] == [wf]  # no other
    finally:
        for process in (worker, server):
            if process is not None:
                stop(process)
