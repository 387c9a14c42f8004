"""A short chaos campaign (python -m tests.chaos.campaign runs long ones): kill -9 of a
worker, the nats-server, the projector and the server during one run; every job ends
exactly once, completed, no job ever runs twice at once, read models equal a rebuild."""

from __future__ import annotations

from pathlib import Path

import pytest

from .campaign import VICTIMS, Campaign


@pytest.mark.slow
def test_a_short_campaign(tmp_path: Path) -> None:
    audit = Campaign(tmp_path, jobs=120).run(rounds=1, interval_s=2.0)
    assert audit.overlaps == []
    assert audit.endings_wrong == {}
    assert (audit.finished, audit.completed_once) == (True, 120)
    assert audit.read_models_equal_rebuild
    assert dict(audit.kills) == dict.fromkeys(VICTIMS, 1)
    assert len(audit.jobs_seen_running) > 60  # the sampler does see live executions
