"""A fleet's HTTP gateway reaches endpoints on host agents; hosts that join get agents."""

from __future__ import annotations

import json

from coldsnap.client import Client
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import wait_for
from tests.fleet.conftest import RayCluster, fleet_server, unmount_lost_host
from tests.fleet.hosts import boots
from tests.web.http import Gateway


def test_a_web_endpoint_on_a_host_agent_answers(server_factory: type[ServerHandle],
                                                ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    server.cli("deploy", str(APPS / "web_endpoints.py"))
    status, body = Gateway(server, "webapp").request("echo", "POST", body={"x": 1})
    assert status == 200, body
    assert json.loads(body)["got"] == {"x": 1}
    assert boots(server, "webapp"), server.cli("logs", "webapp").stdout  # on a named host


def _hosts(server: ServerHandle) -> list[str]:
    client = Client(server.settings)
    try:
        return sorted(h["host"] for h in client.ping()["hosts"])
    finally:
        client.close()


def test_a_node_that_joins_gets_an_agent(server_factory: type[ServerHandle],
                                         ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    before = _hosts(server)
    assert len(before) == len(ray_cluster.hosts), before
    node = ray_cluster.add_host()
    try:
        after = wait_for(lambda: len(h := _hosts(server)) == len(before) + 1 and h, 120,
                         "an agent on the new node")
        assert any(host.endswith(node.node_id[:8]) for host in after), after
    finally:
        ray_cluster.remove_host(node)
        unmount_lost_host(server, node.node_id)
    wait_for(lambda: _hosts(server) == before, 120, "the removed node's agent to go")
