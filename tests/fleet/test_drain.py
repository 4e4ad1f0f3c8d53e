"""A host Ray drains (`ray drain-node`) boots nothing new, finishes its running call,
then its containers stop and its agent leaves, so Ray lets the node go."""

from __future__ import annotations

from typing import Any

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import wait_for
from tests.fleet.conftest import RayCluster, fleet_server
from tests.fleet.hosts import boots, result, spawn


def _drain(cluster: RayCluster, node: Any) -> None:
    """What `ray drain-node --reason DRAIN_NODE_REASON_PREEMPTION` does."""
    import ray
    from ray.core.generated import autoscaler_pb2

    gcs = ray._raylet.GcsClient(address=cluster.address)
    accepted, why = gcs.drain_node(
        node.node_id, autoscaler_pb2.DrainNodeReason.Value("DRAIN_NODE_REASON_PREEMPTION"),
        "a coldsnap test drains it", 0)
    assert accepted, why


def _alive(cluster: RayCluster, node: Any) -> bool:
    import ray

    gcs = ray._raylet.GcsClient(address=cluster.address)
    return any(info.node_id.hex() == node.node_id and info.state == 0  # ALIVE
               for info in gcs.get_all_node_info().values())


def test_a_drained_host_finishes_its_call_and_boots_nothing(
        server_factory: type[ServerHandle], ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    server.cli("deploy", str(APPS / "fleet_app.py"))
    first = spawn(server, "fleet-app", "slow", 15)
    wait_for(lambda: "slow(15) started" in server.cli("logs", "fleet-app").stdout, 180,
             "the first call to start")
    host = boots(server, "fleet-app")[-1][2]
    node = next(n for n in ray_cluster.hosts if n.node_id.startswith(host.rsplit("/", 1)[1]))
    try:
        _drain(ray_cluster, node)
        wait_for(lambda: f"host {host} is draining" in server.log(), 30, "the drain to be seen")
        second = spawn(server, "fleet-app", "slow", 0.5)
        assert result(server, second, 150) == (True, "done")
        assert result(server, first, 150) == (True, "done")  # it ran to its end
        hosts = [h for _, _, h in boots(server, "fleet-app")]
        assert hosts[0] == host and host not in hosts[1:], hosts
        wait_for(lambda: f"host {host} is drained" in server.log(), 60,
                 "the drained host to leave the fleet")
        wait_for(lambda: not _alive(ray_cluster, node), 60, "Ray to let the drained node go")
        assert "host lost" not in server.cli("logs", "fleet-app").stdout
    finally:
        ray_cluster.remove_host(node)
        ray_cluster.add_host()
