"""`coldsnap snapshots ls` on a fleet lists the snapshots its hosts keep, with the host;
`serve --cluster` marks its state dir as the fleet's (tests/cli/test_fleet_state_dir.py
for what that changes)."""

from __future__ import annotations

import json

from coldsnap.wire.fleet_mark import fleet_cluster
from tests.conftest import APPS, ServerHandle
from tests.fleet.conftest import RayCluster, fleet_server
from tests.fleet.hosts import boots

CALL = ("import coldsnap\n"
        "print(coldsnap.Function.from_name('fleet-app', 'slow').remote(0.1))\n")


def test_snapshots_ls_lists_each_hosts_snapshots(server_factory: type[ServerHandle],
                                                 ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    assert fleet_cluster(server.state_dir) == f"ray://{ray_cluster.address}"
    server.cli("deploy", str(APPS / "fleet_app.py"))
    assert server.python(CALL).stdout.strip().splitlines()[-1] == "done"
    [(_, kind, host)] = boots(server, "fleet-app")
    assert kind == "snapshot-created"
    rows = json.loads(server.cli("snapshots", "ls", "--json").stdout)
    on_hosts = [(r["host"], r["app"], r["tag"], r["status"]) for r in rows if r.get("host")]
    assert on_hosts == [(host, "fleet-app", "slow", "ready")], rows
    out = server.cli("snapshots", "ls").stdout
    assert out.startswith("HOST ") and host in out, out
    assert "each host keeps the snapshots it made or fetched" in out, out
    assert f"  host {host}: " in out and "No memory snapshots" not in out, out
