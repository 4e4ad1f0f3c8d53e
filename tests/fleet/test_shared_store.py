"""The shared store on a fleet: each host fetches and uploads its own snapshots."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from coldsnap.client import Client
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import stats, wait_for
from tests.fleet.conftest import RayCluster, fleet_server, unmount_lost_host
from tests.fleet.hosts import boots, result, spawn

APP = "fleet-store"


def manifests(seaweed: Any, prefix: str) -> list[str]:
    return [name for name in seaweed.objects(prefix) if name.startswith("snapshots/")]


def test_a_host_fetches_the_snapshot_another_host_made_when_that_one_is_full(
        server_factory: type[ServerHandle], ray_cluster: RayCluster,
        seaweed: Any) -> None:
    from coldsnap.bench.seaweed import new_prefix

    prefix = new_prefix()
    server = fleet_server(server_factory, ray_cluster, seaweed.env(prefix))
    server.cli("deploy", str(APPS / "fleet_store.py"))
    assert result(server, spawn(server, APP, "slow", 0), 180) == (True, "done")
    [(_, kind, maker)] = boots(server, APP)
    assert kind == "snapshot-created"
    # The host that made it uploads it (in the background, from its own store).
    wait_for(lambda: manifests(seaweed, prefix), 180, "the snapshot's upload")

    # Two calls at once: one takes the warm container, which fills its host (cpu=2);
    # the other's container goes to the other host, which fetches the snapshot first.
    calls = [spawn(server, APP, "slow", 10) for _ in range(2)]
    for call_id in calls:
        assert result(server, call_id, 240) == (True, "done"), server.log()[-3000:]
    booted = boots(server, APP)
    assert len(booted) == 2, (booted, server.log()[-3000:])
    _, kind, host = booted[1]
    assert kind == "restored" and host != maker, booted
    fetched = [b for b in stats(server, APP)["boots"] if b["kind"] == "restored"]
    assert len(fetched) == 1 and fetched[0]["timings"]["fetch_bytes"] > 0, fetched
    assert "from the shared store: " in server.log() and f"onto host {host}" in server.log()


def test_a_new_fleet_fetches_the_snapshot_on_the_host_it_restores_on(
        server_factory: type[ServerHandle], ray_cluster: RayCluster, seaweed: Any,
        tmp_path: Path) -> None:
    from coldsnap.bench.seaweed import new_prefix

    # Both fleets keep images at one path, as hosts sharing a layout do (docs/store.md).
    env = {**seaweed.env(prefix := new_prefix()), "COLDSNAP_IMAGE_DIR": str(tmp_path)}
    first = fleet_server(server_factory, ray_cluster, env)
    first.cli("deploy", str(APPS / "fleet_store.py"))
    assert result(first, spawn(first, APP, "slow", 0), 180) == (True, "done")
    wait_for(lambda: manifests(seaweed, prefix), 180, "the snapshot's upload")
    assert first.stop() == 0, first.log()[-3000:]

    # Another control plane: its agents' stores are empty, the shared store has it.
    second = fleet_server(server_factory, ray_cluster, env)
    second.cli("deploy", str(APPS / "fleet_store.py"))
    assert result(second, spawn(second, APP, "slow", 0), 180) == (True, "done")
    [(_, kind, host)] = boots(second, APP)
    assert kind == "restored", second.log()[-3000:]
    [boot] = stats(second, APP)["boots"]
    assert boot["timings"]["fetch_bytes"] > 0 and boot["timings"]["fetch_s"] > 0, boot
    line = re.search(r"fetched memory snapshot \S+ from s3://\S+: [\d.]+ MB in \d+ ms .* "
                     r"onto host (\S+)", second.cli("logs", APP).stdout)
    assert line and line.group(1) == host, second.cli("logs", APP).stdout  # fetched there


def _host_keys(server: ServerHandle) -> dict[str, str]:
    client = Client(server.settings)
    try:
        return {h["host"]: h["host_key"] for h in client.ping()["hosts"]}
    finally:
        client.close()


def test_a_host_with_its_own_salt_has_a_host_key_of_its_own(
        server_factory: type[ServerHandle], ray_cluster: RayCluster) -> None:
    node = ray_cluster.add_host(env={"COLDSNAP_HOST_KEY_SALT": "another-cpu"})
    server: ServerHandle | None = None
    try:
        # With user namespaces (the default): a fleet's agents share its uid range.
        server = fleet_server(server_factory, ray_cluster)
        keys = _host_keys(server)
        [salted] = [key for host, key in keys.items() if host.endswith(node.node_id[:8])]
        others = {key for host, key in keys.items() if not host.endswith(node.node_id[:8])}
        assert len(others) == 1 and salted not in others, keys  # it would make its own
    finally:
        ray_cluster.remove_host(node)
        if server is not None:
            unmount_lost_host(server, node.node_id)
            # Until Ray marks the node dead, the next test's server would start an agent there.
            wait_for(lambda: len(_host_keys(server)) == len(ray_cluster.hosts), 120,
                     "the removed node's agent to go")
