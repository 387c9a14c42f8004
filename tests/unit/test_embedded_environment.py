"""The embedded nats-server's environment: Go's scheduler sized to share the machine."""

from __future__ import annotations

import os

from jobstream.host.embedded import server_environment


def test_the_embedded_server_gets_half_the_cores_unless_told() -> None:
    env = server_environment({"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert int(env["GOMAXPROCS"]) == max(1, len(os.sched_getaffinity(0)) // 2)


def test_a_gomaxprocs_of_the_user_is_kept() -> None:
    assert server_environment({"GOMAXPROCS": "7"})["GOMAXPROCS"] == "7"
