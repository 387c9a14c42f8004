"""``noop`` and ``dag``: the same workload through jobstream and each peer, side by side.

Every system runs in its own process (``benchmarks.jobstream_engine`` or
``benchmarks.peers``), one after the other on the same idle machine, and reports one JSON
line; a peer that is not installed or fails is reported, not fatal.
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks import ROOT
from benchmarks.results import Measure
from benchmarks.workload import Workload

RUN_TIMEOUT_S = 1800.0


def available_peers(python: str) -> dict[str, str | None]:
    """Per peer: None when ``python`` can drive it, else why not."""
    probe = "import json, benchmarks.peers as p; print(json.dumps(p.available()))"
    done = subprocess.run(
        [python, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {"peers": f"{python} cannot import benchmarks.peers: {done.stderr.strip()[-200:]}"}
    return dict(json.loads(done.stdout))


def run_system(system: str, workload: Workload, python: str) -> Measure:
    """One system through one workload in a fresh process; failures become a note."""
    args = [workload.name, "--jobs", str(workload.jobs), "--layers", str(workload.layers)]
    if system == "jobstream":
        command = [sys.executable, "-m", "benchmarks.jobstream_engine", *args]
    else:
        command = [python, "-m", "benchmarks.peers", system, *args]
    print(f"  {workload.name}: {system} ({workload.jobs:,} jobs)...", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return _failed(workload, system, f"no result within {RUN_TIMEOUT_S:.0f} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return _failed(workload, system, last[:300])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = float(result["seconds"])
    return Measure(
        workload.name,
        str(result.get("system", system)),
        workload.jobs,
        seconds,
        rate=workload.jobs / seconds,
        peak_rss_mib=float(result["peak_rss_mib"]),
        note=str(result.get("note", "")),
        extra={"cpu_s": float(result["cpu_s"])} if result.get("cpu_s") is not None else {},
    )


def _failed(workload: Workload, system: str, why: str) -> Measure:
    return Measure.failed(workload.name, system, workload.jobs, why)


def run(workload: Workload, peers: list[str], python: str) -> list[Measure]:
    """jobstream first, then every requested peer that ``python`` can drive."""
    reasons = available_peers(python)
    results = [run_system("jobstream", workload, python)]
    for peer in peers:
        why = reasons.get(peer, reasons.get("peers", "unknown peer"))
        if why is None:
            results.append(run_system(peer, workload, python))
        else:
            results.append(_failed(workload, peer, f"skipped: {why}"))
    return results
