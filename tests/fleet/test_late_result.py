"""After a control plane restart, the adopted container's answer to the call it ran when
the old one was killed arrives late: the server's log notes it, the next caller sees
nothing of it."""

from __future__ import annotations

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import wait_for
from tests.fleet.conftest import RayCluster, fleet_server
from tests.fleet.hosts import spawn

CALL = ("import coldsnap\n"
        "print(coldsnap.Function.from_name('fleet-app', 'slow').remote(0.2))\n")


def test_a_late_result_after_an_adoption_goes_to_the_server_log_only(
        server_factory: type[ServerHandle], ray_cluster: RayCluster) -> None:
    server = fleet_server(server_factory, ray_cluster)
    server.cli("deploy", str(APPS / "fleet_app.py"))
    assert server.python(CALL).stdout.strip().splitlines()[-1] == "done"
    spawn(server, "fleet-app", "slow", 6)
    wait_for(lambda: "slow(6) started" in server.cli("logs", "fleet-app").stdout, 60,
             "the spawned call to start")
    assert server.proc is not None
    server.proc.kill()  # nothing of it closes: the call runs on in its container
    server.proc.wait()
    server.start(timeout=180)
    out = server.python(CALL, timeout=150)
    assert out.stdout.strip().splitlines()[-1] == "done", out
    wait_for(lambda: "ignored the late result of call" in server.log(), 60,
             "the late result's note in the server log")
    assert "ignored" not in out.stdout + out.stderr, out  # the caller saw none of it
    assert "unexpected 'result'" not in server.log(), server.log()[-3000:]
