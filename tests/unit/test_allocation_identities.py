"""An allocation's identity is retired when it ends (revoked, its credentials file
removed, its folder kept), and one that no allocation was recorded for (its submitter
killed before sbatch answered) is found once it is old enough."""

from __future__ import annotations

import time
from pathlib import Path

from jobstream.host import accounts, users
from jobstream.host.allocations import ORPHAN_AGE_S, SLURM_DIR, orphans, retire


def test_an_ended_allocation_is_retired_once_and_a_left_over_one_is_found(
    tmp_path: Path,
) -> None:
    folder = tmp_path / SLURM_DIR / "wf1-abcd1234"
    folder.mkdir(parents=True)
    accounts.add(tmp_path, "alloc-abcd1234", "compute", folder / "worker.json")
    accounts.add(tmp_path, "alloc-feed0001", "compute", tmp_path / "other.json")
    accounts.add(tmp_path, "alice", "submitter")
    later = time.time() + ORPHAN_AGE_S + 1
    assert orphans(tmp_path, {"alloc-abcd1234"}, time.time()) == []  # too young to tell
    assert orphans(tmp_path, {"alloc-abcd1234"}, later) == ["alloc-feed0001"]
    assert retire(tmp_path, "alloc-abcd1234")
    assert not (folder / "worker.json").exists() and folder.is_dir()
    assert [u.name for u in users.load(tmp_path)] == ["alloc-feed0001", "alice"]
    assert "alloc-abcd1234" not in (tmp_path / "run" / users.AUTHORIZATION_FILE).read_text()
    assert not retire(tmp_path, "alloc-abcd1234")  # nothing left: no reload either
