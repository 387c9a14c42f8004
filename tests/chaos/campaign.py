"""A chaos campaign, run as an independent audit runs one.

A real ``jobstream server --no-projector`` (scheduler and supervised embedded
nats-server), a ``jobstream projector`` and two ``jobstream worker`` processes run an
N-job workflow while processes are killed with SIGKILL in turn: a worker, the
nats-server, the projector, the server. Each is started again as an operator (or Slurm)
would; the nats-server is started again by its server. Meanwhile every live process is
sampled: two live executions of one job at once is an overlap. At the end a plain NATS
client (nats-py, no jobstream code) reads the whole log and counts each job's endings,
and the read models are compared with a rebuild from the log.

    python -m tests.chaos.campaign --jobs 300 --rounds 3 [--keep DIR]

prints the audit as JSON; exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import anyio
import nats

from jobstream.projections.query import remote_query
from jobstream.projections.service import replay_into
from jobstream.streams.connection import Connection, open_connection

from ..integration.processes import jobstream, spawn, stop, wait_for_server
from ..integration.test_read_models import dump

TERMINAL = {"JobCompleted", "JobFailed", "JobTimedOut", "JobCanceled"}
VICTIMS = ("worker", "nats-server", "projector", "server")


@dataclass
class Audit:
    jobs: int
    kills: dict[str, int] = field(default_factory=dict)  # (asdict mangles a Counter)
    seconds: float = 0.0
    finished: bool = False
    completed_once: int = 0
    endings_wrong: dict[str, list[str]] = field(default_factory=dict)
    overlaps: list[str] = field(default_factory=list)
    samples: int = 0
    jobs_seen_running: set[str] = field(default_factory=set)
    read_models_equal_rebuild: bool = False
    events: int = 0
    takeovers_s: list[float] = field(default_factory=list)  # a standby's, after a kill

    def ok(self) -> bool:
        return (
            self.finished
            and self.completed_once == self.jobs
            and not self.endings_wrong
            and not self.overlaps
            and self.read_models_equal_rebuild
        )


def spec_text(jobs: int, tag: str, pace: str = "0.") -> str:
    """N jobs of 0.1 to 0.9 s (``pace`` 0.0: 0.01 to 0.09 s); the ``: chaos-job-i`` word
    keeps a shell in each execution, whose command line names the job."""
    return (
        "name: chaos\njobs:\n  - name: j{i:04d}\n"
        f"    command: ': {tag}{{i}}; sleep {pace}$(( {{i}} % 9 + 1 )); echo {{i}}'\n"
        f"    parameters: {{i: '0:{jobs - 1}'}}\n"
    )


class Campaign:
    STARTED: tuple[str, ...] = ("server", "projector", "worker-a", "worker-b")
    VICTIMS: tuple[str, ...] = VICTIMS
    PACE = "0."

    def __init__(self, root: Path, jobs: int, lease_s: float = 5.0) -> None:
        self.root = root
        self.state = root / ".jobstream"
        self.audit = Audit(jobs)
        (root / "jobstream.toml").write_text(f"lease_s = {lease_s}\n")  # for every process
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.url = ""
        self.sampling = threading.Event()
        # Its own tag: campaigns running side by side must not count each other's jobs.
        self.tag = f"chaos-{os.getpid()}-{id(self)}-job-"

    # --- processes -------------------------------------------------------------------

    def start(self, kind: str) -> None:
        log = self.root / f"{kind}.log"
        if kind == "server":
            self.processes[kind] = spawn("server", "--no-projector", cwd=self.root, log=log)
            self.url = wait_for_server(self.state, self.processes[kind])
        elif kind == "projector":
            self.processes[kind] = spawn("projector", cwd=self.root, log=log)
        else:
            # By the state directory, as an operator would: no password on a command line.
            args = ("worker", "--cpus", "2", "--memory", "1g")
            self.processes[kind] = spawn(*args, cwd=self.root, log=log)

    def kill(self, kind: str) -> None:
        """SIGKILL one process of ``kind`` and bring it (or its replacement) back."""
        self.audit.kills[kind] = self.audit.kills.get(kind, 0) + 1
        if kind == "nats-server":
            server = self.processes["server"].pid
            _wait_until(lambda: _child(server, "nats-server") != 0)
            pid = _child(server, "nats-server")
            os.kill(pid, signal.SIGKILL)
            _wait_until(lambda: _child(server, "nats-server") not in (pid, 0))
            return
        victim = "worker-a" if kind == "worker" else kind
        process = self.processes[victim]
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        time.sleep(0.5)
        self.start(victim)

    # --- the run ---------------------------------------------------------------------

    def run(self, rounds: int, interval_s: float) -> Audit:
        began = time.monotonic()
        spec = self.root / "chaos.yaml"
        spec.write_text(spec_text(self.audit.jobs, self.tag, self.PACE))
        for kind in self.STARTED:
            self.start(kind)
        sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampling.set()
        sampler.start()
        try:
            submitted = jobstream("submit", str(spec), "--json", cwd=self.root)
            assert submitted.returncode == 0, submitted.stderr
            wf = json.loads(submitted.stdout)["workflow"]
            for _ in range(rounds):
                for kind in self.VICTIMS:
                    time.sleep(interval_s)
                    self.kill(kind)
            self.audit.finished = self._wait_finished(wf, timeout_s=60 + self.audit.jobs)
            self.sampling.clear()
            sampler.join()
            anyio.run(self._audit_log, wf)
            anyio.run(self._compare_read_models)
        finally:
            self.sampling.clear()
            for process in self.processes.values():
                stop(process)
        self.audit.seconds = round(time.monotonic() - began, 1)
        return self.audit

    def _wait_finished(self, wf: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = jobstream("status", wf, "--json", cwd=self.root, timeout=30)
            if found.returncode == 0 and json.loads(found.stdout).get("finished"):
                return True
            time.sleep(1.0)
        return False

    def _sample(self) -> None:
        """Every 50 ms: the live executions, by job; two at once is an overlap."""
        while self.sampling.is_set():
            sessions: dict[str, list[int]] = {}
            for job, session in _executions(self.tag):
                sessions.setdefault(job, []).append(session)
            self.audit.samples += 1
            self.audit.jobs_seen_running.update(sessions)
            for job, found in sessions.items():
                if len(found) > 1:
                    self.audit.overlaps.append(f"job {job}: live in sessions {sorted(found)}")
            time.sleep(0.05)

    async def _audit_log(self, wf: str) -> None:
        """Every job's events, read with nats-py alone; exactly one ending each, completed."""
        nc = await nats.connect(self.url.split(","))  # one server, or a cluster's
        try:
            js = nc.jetstream()
            info = await js.stream_info("EVENTS")
            subscription = await js.subscribe("ev.>", ordered_consumer=True)
            endings: dict[str, list[str]] = {}
            for _ in range(info.state.messages):
                message = await subscription.next_msg(timeout=10)
                self.audit.events += 1
                try:
                    event = json.loads(message.data)
                except ValueError:
                    continue
                if message.subject.startswith(f"ev.{wf}.job.") and event["type"] in TERMINAL:
                    endings.setdefault(message.subject, []).append(event["type"])
            for subject, found in endings.items():
                if found == ["JobCompleted"]:
                    self.audit.completed_once += 1
                else:
                    self.audit.endings_wrong[subject] = found
        finally:
            await nc.close()

    async def _compare_read_models(self) -> None:
        """Stop the projector once it has applied the whole log; its file against a rebuild."""
        async with open_connection(self.url) as conn:
            last = (await conn.js.stream_info("EVENTS")).state.last_seq
            with anyio.fail_after(120):
                while await _checkpoint(conn) < last:
                    await anyio.sleep(0.5)
            projector, db = await self._projector(conn)
            stop(projector)
            await replay_into(conn, self.root / "rebuilt.duckdb")
        live = dump(db)
        self.audit.read_models_equal_rebuild = live == dump(self.root / "rebuilt.duckdb")

    async def _projector(self, conn: Connection) -> tuple[subprocess.Popen[bytes], Path]:
        """The process that projects, and its read models' file."""
        return self.processes["projector"], self.state / "jobstream.duckdb"


async def _checkpoint(conn: Connection) -> int:
    """The projector's checkpoint, asked over NATS (0 while it does not answer)."""
    try:
        rows = (await remote_query(conn.nc, "select seq from checkpoint")).to_pylist()
    except Exception:
        return 0
    return int(rows[0]["seq"]) if rows else 0


def _executions(tag: str) -> set[tuple[str, int]]:
    """(job, session) of every live process whose command line carries the campaign's
    tag. Each execution leads its own session: a shell's child between fork and exec
    shows the same command line in the same session, and is the same execution."""
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            words = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            fields = Path(entry.path, "stat").read_text().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z":
            continue  # a zombie: ended, not yet reaped
        for word in words:
            text = word.decode(errors="replace")
            if tag in text:
                found.add((text.split(tag, 1)[1].split(";", 1)[0], int(fields[3])))
                break
    return found


def _child(parent: int, name: str) -> int:
    """The pid of ``parent``'s child called ``name`` (0 if none)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm, rest = stat.split("(", 1)[1].split(") ", 1)
        if comm == name and int(rest.split()[1]) == parent:
            return int(entry.name)
    return 0


def _wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError("condition not reached")


def main(
    kind: type[Campaign] = Campaign, jobs: int = 300, rounds: int = 2, interval: float = 4.0
) -> int:
    """Run one campaign of ``kind`` from the command line; print its audit."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {sys.modules[kind.__module__].__spec__.name}",  # type: ignore[union-attr]
        description=sys.modules[kind.__module__].__doc__,
    )
    parser.add_argument("--jobs", type=int, default=jobs)
    parser.add_argument("--rounds", type=int, default=rounds, help="kills of each kind")
    parser.add_argument("--interval", type=float, default=interval, help="seconds between kills")
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jobstream-chaos-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        audit = kind(root, args.jobs).run(args.rounds, args.interval)
    report = {**asdict(audit), "jobs_seen_running": len(audit.jobs_seen_running)}
    print(json.dumps({**report, "ok": audit.ok()}, indent=2))
    return 0 if audit.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
