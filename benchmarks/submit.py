"""``submit``: validate, expand and durably submit N jobs, then let a scheduler take them.

1. ``load_spec`` + ``submit_workflow`` of a one-line sweep of N ``true`` jobs into a real
   nats-server (file store): done when every JobSubmitted is acknowledged, i.e. on disk.
2. A bare scheduler process starts, replays the log and makes every job ready (JobReady +
   a WORK message each): time until all N are dispatched, and its peak RSS holding them.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import psutil

from benchmarks import ROOT
from benchmarks.results import Measure
from benchmarks.rss import PeakRss
from jobstream.config import load_settings
from jobstream.host.embedded import embedded_server
from jobstream.host.loop import run_async
from jobstream.ops.submit import submit_workflow
from jobstream.spec import load_spec
from jobstream.streams.connection import open_connection
from jobstream.streams.subjects import WORK_STREAM

SPEC = """name: submit-bench
jobs:
  - name: job_{{i}}
    command: "true"
    resource_requirements: one
    parameters:
      i: "1:{jobs}"
resource_requirements:
  - name: one
    num_cpus: 1
    memory: 10m
    runtime: PT1H
"""


async def _dispatched(url: str, jobs: int, timeout_s: float) -> float:
    """Seconds until the WORK stream holds ``jobs`` dispatches."""
    began = time.perf_counter()
    async with open_connection(url) as conn:
        with anyio.fail_after(timeout_s):
            while True:
                try:
                    info = await conn.js.stream_info(WORK_STREAM)
                except Exception:  # the scheduler creates WORK when it starts
                    info = None
                if info is not None and info.state.messages >= jobs:
                    return time.perf_counter() - began
                await anyio.sleep(0.25)


async def measure(jobs: int, root: Path) -> list[Measure]:
    spec = root / "spec.yaml"
    spec.write_text(SPEC.format(jobs=jobs))
    async with embedded_server(root / "nats", sync=load_settings().sync) as url:
        async with open_connection(url) as conn:
            began = time.perf_counter()
            workflow = load_spec(spec)
            expanded = time.perf_counter() - began
            await submit_workflow(conn, workflow, workdir=str(root))
            seconds = time.perf_counter() - began
        with open(root / "scheduler.log", "wb") as log:
            scheduler = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.scheduler_only", url],
                cwd=ROOT, stdout=log, stderr=log,
            )  # fmt: skip
        try:
            with PeakRss([scheduler.pid]) as rss:
                ready_s = await _dispatched(url, jobs, timeout_s=max(120.0, jobs / 500))
            rss_now = psutil.Process(scheduler.pid).memory_info().rss / 2**20
        finally:
            scheduler.kill()
            scheduler.wait()
    return [
        Measure(
            "submit", "jobstream", jobs, seconds, rate=jobs / seconds,
            note=f"expand {expanded:.1f} s; durable = every JobSubmitted acknowledged",
        ),
        Measure(
            "submit", "jobstream scheduler", jobs, ready_s, rate=jobs / ready_s,
            peak_rss_mib=max(rss.peak_mib, rss_now),
            note="replay + JobReady + WORK dispatch of every job",
        ),
    ]  # fmt: skip


def run(quick: bool, jobs: int | None = None) -> list[Measure]:
    with tempfile.TemporaryDirectory(prefix="jobstream-submit-") as tmp:
        return run_async(measure, jobs or (20_000 if quick else 1_000_000), Path(tmp))
