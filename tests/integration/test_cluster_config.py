"""`jobstream cluster config` writes what nats-server takes: a configuration per node
(0600: it holds the route password), the admin login and the users they share; a
second run keeps the route password (the copies on the nodes stay valid)."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from jobstream.host.embedded import server_binary

from .processes import jobstream


def test_cluster_config_writes_node_configurations(tmp_path: Path) -> None:
    args = ["cluster", "config", "--state-dir", "site", "--store", "/data", "--json"]
    args += ["--host", "n1", "--host", "n2", "--host", "n3"]
    made = jobstream(*args, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    found = json.loads(made.stdout)
    assert found["url"] == "nats://n1:4222,nats://n2:4222,nats://n3:4222"
    run = tmp_path / "site" / "run"
    for i in (1, 2, 3):
        config = run / f"node-{i}.conf"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        tested = subprocess.run(
            [str(server_binary()), "-t", "-c", str(config)], capture_output=True, text=True
        )
        assert tested.returncode == 0, tested.stderr or tested.stdout
    assert stat.S_IMODE((tmp_path / "site" / "credentials.json").stat().st_mode) == 0o600
    before = (run / "node-1.conf").read_text()
    again = jobstream(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (run / "node-1.conf").read_text() == before


def test_cluster_config_refuses_too_few_or_repeated_hosts(tmp_path: Path) -> None:
    two = jobstream("cluster", "config", "--host", "a", "--host", "b", cwd=tmp_path)
    assert two.returncode != 0 and "3 or more" in two.stderr
    assert not (tmp_path / ".jobstream" / "run").exists()
    counted = ["--host", "a", "--host", "b", "--host", "c", "--nodes", "4"]
    wrong = jobstream("cluster", "config", *counted, cwd=tmp_path)
    assert wrong.returncode != 0 and "one --host per node" in wrong.stderr
