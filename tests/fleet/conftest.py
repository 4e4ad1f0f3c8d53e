"""A real multi-node Ray cluster on this machine, shared by the fleet tests (Ray starts
slowly): a head without the coldsnap resource, and hosts that offer it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu

HOST_CPUS = 2  # each simulated host: room for two one-CPU containers


class RayCluster:
    """``ray.cluster_utils.Cluster`` with helpers to add and remove coldsnap hosts."""

    def __init__(self) -> None:
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        self.hosts: list[Any] = []

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add_host(self, env: dict[str, str] | None = None) -> Any:
        """A host; ``env``: its raylet's environment (its agent's too)."""
        node = self.cluster.add_node(num_cpus=HOST_CPUS, resources={"coldsnap": 1},
                                     env_vars=env)
        self.cluster.wait_for_nodes()
        self.hosts.append(node)
        return node

    def remove_host(self, node: Any) -> None:
        self.hosts.remove(node)
        self.cluster.remove_node(node, allow_graceful=False)

    def shutdown(self) -> None:
        self.cluster.shutdown()


def unmount_lost_host(server: ServerHandle, node_id: str) -> None:
    """A host that died closed nothing: unmount what its engine left in its run dir."""
    from coldsnap.server.fleet.ray_fleet import agent_settings

    run_dir = str(agent_settings(server.settings, node_id).run_path)
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
              if line.split()[1].startswith(run_dir)]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    pytest.importorskip("ray", reason="the fleet tests need Ray: pip install 'coldsnap[cluster]'")
    require_criu()
    cluster = RayCluster()
    try:
        for _ in range(2):
            cluster.add_host()
        yield cluster
    finally:
        cluster.shutdown()


def fleet_server(server_factory: type[ServerHandle], cluster: RayCluster,
                 env: dict[str, str] | None = None) -> ServerHandle:
    """A criu server whose containers run on the cluster's hosts."""
    server = server_factory("criu", {"COLDSNAP_CLUSTER": f"ray://{cluster.address}",
                                     "COLDSNAP_BOOT_TIMEOUT_S": "120", **(env or {})})
    return server.start(timeout=180)
