"""A fleet with user namespaces on (the default): its agents claim the fleet's uid range,
not one per node (engine/userns.py), so alike hosts have one host key and one host
restores the snapshot another made, in the same range."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coldsnap.client import Client
from tests.conftest import ServerHandle
from tests.end_to_end import stats, wait_for, write_app
from tests.fleet.conftest import RayCluster, fleet_server
from tests.fleet.hosts import boots, result, spawn

APP = "fleet-userns"
# cpu=2 fills a test host: the second of two calls at once boots on the other host.
SOURCE = """
import json, time

import coldsnap

app = coldsnap.App("fleet-userns", image=coldsnap.Image.debian_slim())


@app.function(enable_memory_snapshot=True, cpu=2.0, scaledown_window=300)
def ids(seconds: float) -> str:
    time.sleep(seconds)
    return json.dumps({"uid": __import__("os").getuid(),
                       "uid_map": open("/proc/self/uid_map").read().split()})
"""


def _host_keys(server: ServerHandle) -> dict[str, str]:
    client = Client(server.settings)
    try:
        return {h["host"]: h["host_key"] for h in client.ping()["hosts"]}
    finally:
        client.close()


def test_a_fleets_hosts_share_a_host_key_and_restore_each_others_snapshots_in_a_userns(
        server_factory: type[ServerHandle], ray_cluster: RayCluster, seaweed: Any,
        tmp_path: Path) -> None:
    from coldsnap.bench.seaweed import new_prefix

    prefix = new_prefix()
    env = {**seaweed.env(prefix), "COLDSNAP_USER_NAMESPACES": "on"}
    server = fleet_server(server_factory, ray_cluster, env)
    keys = _host_keys(server)
    assert len(keys) == len(ray_cluster.hosts) and len(set(keys.values())) == 1, keys

    server.cli("deploy", str(write_app(tmp_path, "fleet_userns", SOURCE)))
    ok, first = result(server, spawn(server, APP, "ids", 0), 300)
    assert ok, (first, server.log()[-3000:])
    [(_, kind, maker)] = boots(server, APP)
    assert kind == "snapshot-created", server.log()[-3000:]
    wait_for(lambda: [n for n in seaweed.objects(prefix) if n.startswith("snapshots/")],
             180, "the snapshot's upload")

    calls = [spawn(server, APP, "ids", 10) for _ in range(2)]
    answers = [result(server, call_id, 300) for call_id in calls]
    assert all(ok for ok, _ in answers), (answers, server.log()[-3000:])
    booted = boots(server, APP)
    assert len(booted) == 2, (booted, server.log()[-3000:])
    _, kind, host = booted[1]
    assert kind == "restored" and host != maker, (booted, server.cli("logs", APP).stdout)
    restored = [b for b in stats(server, APP)["boots"] if b["kind"] == "restored"]
    assert len(restored) == 1 and restored[0]["timings"]["fetch_bytes"] > 0, restored
    # In a user namespace on both hosts, and in the same range: root inside, not outside.
    maps = {tuple(json.loads(text)["uid_map"]) for _, text in [(ok, first), *answers]}
    [uid_map] = maps
    assert uid_map[0] == "0" and uid_map[1] != "0", maps
