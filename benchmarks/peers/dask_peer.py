"""dask.distributed: every job a task running ``bash -c command``; deps are futures passed in.

``LocalCluster(processes=True)`` with ``workers`` single-threaded worker processes (each under
a nanny), so at most ``workers`` jobs run at once and no job shares a GIL with another. The
scheduler runs in this process, as it does for LocalCluster users. Tasks are submitted one
``client.submit`` per job, the futures API that matches a job stream.
"""

from __future__ import annotations

import subprocess
import tempfile
import time

from distributed import Client, Future, LocalCluster, wait

from benchmarks.peers import STARTUP_TIMEOUT_S, PeerResult, measure
from benchmarks.workload import Workload


def run(workload: Workload, workers: int = 2) -> PeerResult:
    futures: dict[str, Future] = {}

    def submit_and_wait() -> None:
        for name, deps in workload.graph():
            args = [futures[dep] for dep in deps]
            futures[name] = client.submit(_shell, workload.command, *args, key=name, pure=False)
        wait(list(futures.values()))

    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="dask-peer-") as tmp,
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            local_directory=tmp,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers, timeout=STARTUP_TIMEOUT_S)
        startup = time.perf_counter() - started
        seconds, peak_mib = measure(submit_and_wait)
        failed = [name for name, future in futures.items() if future.status != "finished"]
        if failed:
            raise RuntimeError(f"{len(failed)} dask tasks failed, first {failed[0]}")
    return PeerResult("dask", workload.jobs, seconds, peak_mib, f"start-up {startup:.1f} s")


def _shell(command: str, *_deps: None) -> None:
    """One job; the dependency results are only there to order it after them."""
    subprocess.run(["bash", "-c", command], check=True)
