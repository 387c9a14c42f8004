"""The pure parts of running on a NATS cluster: URL lists with one login, node
configurations, and the lease's timing decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobstream.errors import ConfigError
from jobstream.host.cluster import ROUTE_USER, local_plan, node_config, plan
from jobstream.host.lease import RENEW_S, TTL_S, Observation, must_stop
from jobstream.streams.urls import addresses, login_of, public, servers, user_of, with_user

CLUSTER = "nats://a:4222, nats://b:4223,nats://c:4224"


def test_a_url_list_carries_one_login_to_every_server() -> None:
    assert servers(CLUSTER) == ["nats://a:4222", "nats://b:4223", "nats://c:4224"]
    dialed = with_user(CLUSTER, "alice", "p@ss word")
    assert servers(dialed)[2] == "nats://alice:p%40ss%20word@c:4224"
    assert public(dialed) == "nats://a:4222,nats://b:4223,nats://c:4224"
    assert user_of(dialed) == "alice"
    assert login_of(dialed) == {"user": "alice", "password": "p@ss word"}
    assert login_of("nats://TOKEN@a:4222") == {"token": "TOKEN"}
    assert login_of(CLUSTER) == {}
    assert [(a.host, a.port, a.user) for a in addresses(dialed)][1] == ("b", 4223, "alice")


def test_a_node_routes_to_the_others_with_the_route_login(tmp_path: Path) -> None:
    cluster = plan(["n1", "n2", "n3"], store=Path("/data"))
    text = node_config(cluster, cluster.nodes[1], tmp_path)
    assert 'server_name: "node-2"' in text
    assert f"nats-route://{ROUTE_USER}:{cluster.route_password}@n1:6222" in text
    assert "@n3:6222" in text and "@n2:6222" not in text  # never to itself
    assert 'include "authorization.conf"' in text
    assert '"store_dir": "/data/node-2"' in text
    assert cluster.url() == "nats://n1:4222,nats://n2:4222,nats://n3:4222"


def test_a_cluster_needs_three_distinct_nodes() -> None:
    with pytest.raises(ConfigError, match="3 or more"):
        plan(["n1", "n2"], store=Path("/data"))
    with pytest.raises(ConfigError, match="host of its own"):
        plan(["n1", "n1", "n2"], store=Path("/data"))
    with pytest.raises(ConfigError, match="3 or more"):
        local_plan(2, Path("/tmp/x"))


def test_local_nodes_get_ports_of_their_own() -> None:
    cluster = local_plan(3, Path("/tmp/x"))
    ports = [p for n in cluster.nodes for p in (n.client_port, n.route_port, n.monitor_port)]
    assert len(set(ports)) == 9
    assert cluster.listen == "127.0.0.1"


def test_a_standby_waits_a_whole_ttl_of_silence() -> None:
    seen = Observation()
    assert not seen.expired(100.0)  # nothing seen yet: nothing to judge
    seen.saw(7, now=100.0)
    assert not seen.expired(100.0 + TTL_S - 0.01)
    seen.saw(8, now=102.0)  # renewed: counting starts again
    assert not seen.expired(100.0 + TTL_S)
    assert seen.expired(102.0 + TTL_S)


def test_a_holder_stops_before_a_standby_may_take_over() -> None:
    assert not must_stop(last_renewed=0.0, now=TTL_S - RENEW_S - 0.01)
    assert must_stop(last_renewed=0.0, now=TTL_S - RENEW_S)
