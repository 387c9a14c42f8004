"""Shared fixtures: a real nats-server with JetStream per test, on a free loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from jobstream.config import Settings
from jobstream.host.cluster import LocalCluster, local_cluster
from jobstream.host.embedded import embedded_server
from jobstream.host.loop import tune_for_throughput
from jobstream.streams.connection import Connection, open_connection

# Property tests and fuzzing: in CI a fixed, derandomized run (the same examples every
# time); `JOBSTREAM_FUZZ=long pytest tests/fuzz` searches far longer with fresh seeds
# (docs/development.md).
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, max_examples=200)
hypothesis_settings.register_profile(
    "long",
    deadline=None,
    max_examples=20_000,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.load_profile(os.environ.get("JOBSTREAM_FUZZ", "ci"))


@pytest.fixture(scope="session", autouse=True)
def tuned_interpreter() -> None:
    """Tests run workers and projectors in this process: tune it as their hosts do."""
    tune_for_throughput()


@pytest.fixture
async def nats_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh nats-server -js with its store in the test's temporary directory."""
    async with embedded_server(tmp_path / "server") as url:
        yield url


@pytest.fixture
async def conn(nats_url: str) -> AsyncIterator[Connection]:
    async with open_connection(nats_url, "test") as connection:
        yield connection


@pytest.fixture
def settings(tmp_path: Path, nats_url: str) -> Settings:
    return Settings(nats_url=nats_url, state_dir=tmp_path / "state", lease_s=5.0)


@pytest.fixture
async def nats_cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    """Three nats-servers with JetStream on loopback, routed, with the state directory's
    users (``jobstream dev-cluster``'s, unsupervised here: a node killed stays down)."""
    async with local_cluster(tmp_path / "cluster") as running:
        yield running


SLURM_SCRIPT = Path(__file__).parents[1] / "scripts" / "slurm-local-cluster.sh"


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[None]:
    """A real single-node Slurm (slurmctld, slurmd, munge; 2 fake GPUs as gres) from
    ``scripts/slurm-local-cluster.sh``, which installs Debian's packages if missing.
    Skipped where it cannot run (not root, or neither Slurm nor apt-get); stopped at the
    end if this session started it."""
    if os.geteuid() != 0 or not (shutil.which("slurmctld") or shutil.which("apt-get")):
        pytest.skip("a local Slurm needs root and Slurm or apt-get")
    running = subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0
    started = subprocess.run(
        ["bash", str(SLURM_SCRIPT), "start"], capture_output=True, text=True, timeout=900
    )
    assert started.returncode == 0, started.stderr
    yield
    if not running:
        subprocess.run(["bash", str(SLURM_SCRIPT), "stop"], capture_output=True, timeout=60)
