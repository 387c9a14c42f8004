"""Parsl: every job a ``bash_app`` returning ``command``; deps are app futures in ``inputs``.

One HighThroughputExecutor block from a LocalProvider with ``max_workers_per_node=workers``,
so at most ``workers`` jobs run at once. The DataFlowKernel runs in this process, the
interchange in a child process, the worker pool in a process tree LocalProvider detaches.
Parsl's defaults are kept (encrypted ZMQ, debug log files), every file under a temporary
run directory.
"""

from __future__ import annotations

import os
import sysconfig
import tempfile
import time
from concurrent.futures import Future, wait
from pathlib import Path
from unittest import mock

import parsl
from parsl.app.app import bash_app
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

from benchmarks.peers import STARTUP_TIMEOUT_S, PeerResult, measure
from benchmarks.workload import Workload

ROOT = str(Path(__file__).resolve().parents[2])  # holds the ``benchmarks`` package


@bash_app
def _shell(command: str, inputs: list[Future[int]]) -> str:
    """One job; ``inputs`` only orders it after its dependencies."""
    return command


def run(workload: Workload, workers: int = 2) -> PeerResult:
    futures: dict[str, Future[int]] = {}

    def submit_and_wait() -> None:
        for name, deps in workload.graph():
            futures[name] = _shell(workload.command, inputs=[futures[dep] for dep in deps])
        wait(futures.values())

    # Parsl starts interchange.py and process_worker_pool.py by name, as from an activated
    # venv, and its workers unpickle ``_shell`` by reference, so they need ``benchmarks``.
    env = {
        "PATH": os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
    }
    with (
        mock.patch.dict(os.environ, env),
        tempfile.TemporaryDirectory(prefix="parsl-peer-") as tmp,
    ):
        started = time.perf_counter()
        htex = HighThroughputExecutor(
            address="127.0.0.1",
            max_workers_per_node=workers,
            provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1),
            working_dir=tmp,
            worker_logdir_root=tmp,
        )
        with parsl.load(Config(executors=[htex], run_dir=tmp)):
            _wait_for_workers(htex, workers)
            startup = time.perf_counter() - started
            # A LocalProvider job id is the pid of the block's process tree.
            blocks = [int(pid) for pid in htex.blocks_to_job_id.values()]
            seconds, peak_mib = measure(submit_and_wait, blocks)
    failed = [name for name, future in futures.items() if future.exception() is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} parsl apps failed, first {failed[0]}")
    return PeerResult("parsl", workload.jobs, seconds, peak_mib, f"start-up {startup:.1f} s")


def _wait_for_workers(htex: HighThroughputExecutor, workers: int) -> None:
    """Block until the worker pool has registered, so start-up stays out of the timing."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while sum(manager["worker_count"] for manager in htex.connected_managers()) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Parsl workers not connected after {STARTUP_TIMEOUT_S} s")
        time.sleep(0.1)
