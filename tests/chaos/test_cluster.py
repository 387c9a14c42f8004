"""On a 3-node NATS cluster (R3), two servers (active, standby), two compute workers:
kill -9 of the node leading EVENTS, of the active server, of a worker during a 500-job
run. Every job completes exactly once (a plain NATS client counts), no job ever runs
twice at once, the standby takes over in under 5 s, read models equal a rebuild."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cluster_campaign import CLUSTER_VICTIMS, ClusterCampaign


@pytest.mark.slow
def test_a_cluster_loses_nothing(tmp_path: Path) -> None:
    audit = ClusterCampaign(tmp_path, jobs=500).run(rounds=1, interval_s=2.0)
    assert audit.overlaps == []
    assert audit.endings_wrong == {}
    assert (audit.finished, audit.completed_once) == (True, 500)
    assert dict(audit.kills) == dict.fromkeys(CLUSTER_VICTIMS, 1)
    assert audit.read_models_equal_rebuild
    assert len(audit.takeovers_s) == 1
