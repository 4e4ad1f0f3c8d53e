"""A control plane that restarts keeps its agents and their containers: a warm container
of a version still deployed serves the next call without a boot; the others stop."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import wait_for
from tests.fleet.conftest import RayCluster, fleet_server
from tests.fleet.hosts import boots, result, spawn

CALL = ("import coldsnap\n"
        "print(coldsnap.Function.from_name('fleet-app', 'slow').remote(0.2))\n")


def _crash_and_restart(server: ServerHandle) -> None:
    """Kill the control plane at once (nothing of it closes), then start it again."""
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.start(timeout=180)


def _warm_container(server: ServerHandle) -> str:
    server.cli("deploy", str(APPS / "fleet_app.py"))
    assert server.python(CALL).stdout.strip().splitlines()[-1] == "done"
    return boots(server, "fleet-app")[-1][0]


def test_a_restarted_control_plane_serves_with_the_same_container(
        server_factory: type[ServerHandle], ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    container_id = _warm_container(server)
    booted = boots(server, "fleet-app")  # the log keeps them across the restart
    _crash_and_restart(server)
    assert "took over the agent" in server.log(), server.log()[-3000:]
    assert server.python(CALL).stdout.strip().splitlines()[-1] == "done"
    log = server.cli("logs", "fleet-app").stdout
    assert f"[{container_id}] coldsnap: adopted after a control plane restart" in log, log
    assert log.count(f"[{container_id}] slow(0.2) started") == 2, log  # before, and now
    assert boots(server, "fleet-app") == booted, log  # none booted since the restart


def test_a_container_of_a_stopped_app_is_stopped_after_a_restart(
        server_factory: type[ServerHandle], ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    container_id = _warm_container(server)
    assert container_id in Path("/proc/self/mounts").read_text()  # its root, on its host
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    with sqlite3.connect(server.settings.db_path) as db:  # as `coldsnap app stop` would
        db.execute("UPDATE apps SET state = 'stopped' WHERE name = 'fleet-app'")
    server.start(timeout=180)
    wait_for(lambda: f"stopping container {container_id}" in server.log(), 60,
             "the found container to be stopped")
    assert "app 'fleet-app' is stopped" in server.log(), server.log()[-3000:]
    wait_for(lambda: container_id not in Path("/proc/self/mounts").read_text(), 60,
             f"container {container_id}'s mounts to go")


def test_a_call_running_across_a_restart_fails_and_nothing_hangs(
        server_factory: type[ServerHandle], ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    _warm_container(server)
    call_id = spawn(server, "fleet-app", "slow", 10)
    wait_for(lambda: "slow(10) started" in server.cli("logs", "fleet-app").stdout, 60,
             "the spawned call to start")
    _crash_and_restart(server)
    ok, text = result(server, call_id, 30)
    assert not ok and "the server stopped while it was queued or running" in text, text
    t0 = time.monotonic()
    assert server.python(CALL, timeout=150).stdout.strip().splitlines()[-1] == "done"
    assert time.monotonic() - t0 < 120


GREET = ("import coldsnap\n"
         "print(coldsnap.Cls.from_name('fleet-app', 'Greeter')(name='ann').greet.remote())\n")


def test_a_class_variant_s_container_is_adopted_too(
        server_factory: type[ServerHandle], ray_cluster: RayCluster) -> None:
    """Cls(name='ann') runs in a pool of its own; after a restart the same container
    serves it (its labels carry the variant's parameters to make that pool again)."""
    server = fleet_server(server_factory, ray_cluster)
    server.cli("deploy", str(APPS / "fleet_app.py"))
    assert server.python(GREET).stdout.strip().splitlines()[-1] == "hello ann"
    booted = boots(server, "fleet-app")
    [(container_id, _, _)] = booted
    _crash_and_restart(server)
    assert server.python(GREET).stdout.strip().splitlines()[-1] == "hello ann"
    log = server.cli("logs", "fleet-app").stdout
    assert f"[{container_id}] coldsnap: adopted after a control plane restart" in log, log
    assert log.count(f"[{container_id}] greet(ann) started") == 2, log
    assert boots(server, "fleet-app") == booted, log
