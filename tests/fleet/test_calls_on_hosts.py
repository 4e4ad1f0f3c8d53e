"""Calls on a fleet: a deploy's containers land on host agents on Ray nodes, and answer."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import APPS, ServerHandle
from tests.fleet.conftest import RayCluster, fleet_server


def test_call_runs_on_a_host_agent(server_factory: type[ServerHandle],
                                   ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    server.cli("deploy", str(APPS / "square.py"))
    out = server.python("import coldsnap\n"
                        "sq = coldsnap.Function.from_name('test-square', 'square')\n"
                        "print(sq.remote(7))\n")
    assert out.stdout.strip().splitlines()[-1] == "49"
    log = server.cli("logs", "test-square").stdout
    assert "boot ready" in log and "on host" in log, log


def test_stopping_the_server_stops_its_agents_cleanly(server_factory: type[ServerHandle],
                                                      ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    server.cli("deploy", str(APPS / "square.py"))
    server.python("import coldsnap\n"
                  "print(coldsnap.Function.from_name('test-square', 'square').remote(2))\n")
    assert server.stop() == 0, server.log()[-3000:]
    assert "coldsnap server stopped" in server.log()
    hosts_dir = str(server.state_dir / "hosts")
    mounts = [line for line in Path("/proc/self/mounts").read_text().splitlines()
              if hosts_dir in line]
    assert mounts == [], mounts  # each agent's engine gave its mounts back
