"""Calls on a fleet: a deploy's containers land on host agents on Ray nodes, and answer."""

from __future__ import annotations

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
