"""A host that leaves mid-call: the call fails "host lost", or is retried elsewhere,
within a bounded time, never a hang. Each test removes a host and adds a new one."""

from __future__ import annotations

import time

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import wait_for
from tests.fleet.conftest import RayCluster, fleet_server, unmount_lost_host
from tests.fleet.hosts import boots, result, spawn


def _kill_host_running(server: ServerHandle, cluster: RayCluster, tag: str) -> str:
    """Wait until a call of ``tag`` runs, then remove its host's node (and unmount what
    its engine left); the host's name."""
    wait_for(lambda: f"{tag}(" in server.cli("logs", "fleet-app").stdout, 180,
             f"a call of {tag} to start")
    host = boots(server, "fleet-app")[-1][2]
    node_id = host.rsplit("/", 1)[1]
    node = next(n for n in cluster.hosts if n.node_id.startswith(node_id))
    cluster.remove_host(node)
    unmount_lost_host(server, node.node_id)
    return host


def test_call_on_a_lost_host_fails_host_lost(server_factory: type[ServerHandle],
                                             ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    server.cli("deploy", str(APPS / "fleet_app.py"))
    call_id = spawn(server, "fleet-app", "slow", 300)
    try:
        host = _kill_host_running(server, ray_cluster, "slow")
        t0 = time.monotonic()
        ok, text = result(server, call_id, 150)
        assert not ok and "host lost" in text, text
        assert host in text, text
        assert time.monotonic() - t0 < 120
    finally:
        ray_cluster.add_host()


def test_call_on_a_lost_host_is_retried_on_another(server_factory: type[ServerHandle],
                                                   ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    server.cli("deploy", str(APPS / "fleet_app.py"))
    call_id = spawn(server, "fleet-app", "slow_retried", 8)
    try:
        lost = _kill_host_running(server, ray_cluster, "slow_retried")
        assert result(server, call_id, 150) == (True, "done")
        hosts = [host for _, _, host in boots(server, "fleet-app")]
        assert hosts[0] == lost and hosts[-1] != lost, hosts
    finally:
        ray_cluster.add_host()
