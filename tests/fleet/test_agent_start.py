"""A node whose agent fails to start doesn't stop the control plane's start: the others
serve, the log says why, and the watcher tries that node again until it starts."""

from __future__ import annotations

from coldsnap.client import Client
from coldsnap.server.fleet.ray_agents import agent_settings
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import wait_for
from tests.fleet.conftest import RayCluster, unmount_lost_host
from tests.web.http import Gateway


def _hosts(server: ServerHandle) -> list[str]:
    client = Client(server.settings)
    try:
        return sorted(h["host"] for h in client.ping()["hosts"])
    finally:
        client.close()


def test_a_node_whose_agent_fails_does_not_stop_the_start(
        server_factory: type[ServerHandle], ray_cluster: RayCluster) -> None:
    node = ray_cluster.add_host()
    server = server_factory("criu", {"COLDSNAP_CLUSTER": f"ray://{ray_cluster.address}",
                                     "COLDSNAP_BOOT_TIMEOUT_S": "120"})
    # A file where the agent's state dir goes: its engine can't start on that node.
    blocker = agent_settings(server.settings, node.node_id).state_dir
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("in the agent's way")
    try:
        server.start(timeout=240)
        hosts = _hosts(server)
        assert len(hosts) == len(ray_cluster.hosts) - 1, hosts
        assert not any(h.endswith(node.node_id[:8]) for h in hosts), hosts
        assert f"could not start the agent on Ray node {node.node_id[:12]}" in server.log()
        server.cli("deploy", str(APPS / "web_endpoints.py"))  # the others serve meanwhile
        status, body = Gateway(server, "webapp").request("echo", "POST", body={"x": 1})
        assert status == 200, body
        blocker.unlink()  # the cause goes: a later round starts the agent
        wait_for(lambda: any(h.endswith(node.node_id[:8]) for h in _hosts(server)), 120,
                 "the watcher to start the agent on the node it failed on")
    finally:
        ray_cluster.remove_host(node)
        unmount_lost_host(server, node.node_id)
