"""Placement across hosts: the snapshot's host is preferred, limits hold fleet-wide."""

from __future__ import annotations

import time

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import stats, wait_for
from tests.fleet.conftest import RayCluster, fleet_server
from tests.fleet.hosts import boots, result, spawn


def test_boot_goes_to_the_host_holding_the_snapshot(server_factory: type[ServerHandle],
                                                    ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    server.cli("deploy", str(APPS / "fleet_app.py"))
    # Two calls at once: two containers. The first makes the snapshot on its host; the
    # second waits for it and restores there, though the other host is emptier.
    calls = [spawn(server, "fleet-app", "slow", 4) for _ in range(2)]
    for call_id in calls:
        assert result(server, call_id, 180) == (True, "done")
    booted = boots(server, "fleet-app")
    kinds = sorted(kind for _, kind, _ in booted)
    assert kinds == ["restored", "snapshot-created"], booted
    assert len({host for _, _, host in booted}) == 1, booted


def test_min_and_max_containers_hold_fleet_wide(server_factory: type[ServerHandle],
                                                ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    server.cli("deploy", str(APPS / "fleet_bounded.py"))

    def bounded() -> dict:  # type: ignore[type-arg]
        fns = stats(server, "fleet-bounded")["functions"]
        return next(f for f in fns if f["tag"] == "bounded")

    warm = wait_for(lambda: (f := bounded()) and len(f["containers"]) == 2 and f, 120,
                    "min_containers=2 warm containers")
    # Spread: each host has room for two, but the second goes to the emptier host.
    assert len({c["host"] for c in warm["containers"]}) == 2, warm
    calls = [spawn(server, "fleet-bounded", "bounded", 3) for _ in range(6)]
    most = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        most = max(most, len(bounded()["containers"]) + bounded()["booting"])
        time.sleep(0.5)
    assert 2 <= most <= 3, most
    for call_id in calls:
        assert result(server, call_id, 180) == (True, "done")
    assert len(bounded()["containers"]) >= 2
