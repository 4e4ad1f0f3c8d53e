"""A fleet's state dir: no command starts a server on it in the background (it would be a
single host's, blind to the fleet); `coldsnap stop` and the refusal name the command
that serves the fleet again; a single-host `serve` there takes the dir back, saying so."""

from __future__ import annotations

import subprocess
import sys

from coldsnap.settings import EMBEDDED_ENV
from coldsnap.wire.fleet_mark import fleet_cluster, mark_path, remember_fleet
from tests.conftest import ServerHandle

CLUSTER = "ray://10.0.0.5:6379"


def test_a_command_starts_no_server_on_a_fleets_state_dir(
    server_factory: type[ServerHandle],
) -> None:
    server = server_factory()  # its state dir, no server on it
    server.state_dir.mkdir(parents=True)
    remember_fleet(server.state_dir, CLUSTER)
    done = server.cli("apps", "ls", check=False)
    assert done.returncode == 1, done
    assert f"belongs to the control plane of a fleet (cluster {CLUSTER})" in done.stderr
    assert f"`coldsnap serve --cluster {CLUSTER}`" in done.stderr
    assert not (server.state_dir / "server.log").exists()  # none was started
    assert not server.settings.socket_path.exists()


def test_a_command_starts_no_fleet_control_plane_from_coldsnap_cluster(
    server_factory: type[ServerHandle],
) -> None:
    server = server_factory(env={"COLDSNAP_CLUSTER": CLUSTER})
    done = server.cli("apps", "ls", check=False)
    assert done.returncode == 1, done
    assert f"COLDSNAP_CLUSTER is set ({CLUSTER})" in done.stderr
    assert f"`coldsnap serve --cluster {CLUSTER}`" in done.stderr
    assert not (server.state_dir / "server.log").exists()


def test_stop_on_a_fleet_says_commands_do_not_start_it_again(
    server_factory: type[ServerHandle],
) -> None:
    server = server_factory().start()
    assert server.proc is not None
    remember_fleet(server.state_dir, CLUSTER)  # as `serve --cluster` marks it (no Ray here)
    out = server.cli("stop").stdout
    assert f"stopped the fleet's control plane (pid {server.proc.pid})" in out
    assert f"run `coldsnap serve --cluster {CLUSTER}`" in out
    assert "starts it again" not in out
    assert server.proc.wait(timeout=30) == 0
    refused = server.cli("apps", "ls", check=False)
    assert refused.returncode == 1 and "belongs to the control plane of a fleet" in \
        refused.stderr, refused


def test_a_single_host_serve_takes_a_fleets_state_dir_back_and_says_so(
    server_factory: type[ServerHandle],
) -> None:
    server = server_factory()
    server.state_dir.mkdir(parents=True)
    remember_fleet(server.state_dir, CLUSTER)
    server.start()
    assert not mark_path(server.state_dir).exists()
    assert fleet_cluster(server.state_dir) is None
    log = server.log()
    assert f"was the control plane's of the fleet on {CLUSTER}" in log, log
    assert f"run `coldsnap serve --cluster {CLUSTER}`" in log, log


def test_a_background_server_exits_on_a_fleets_state_dir(
    server_factory: type[ServerHandle],
) -> None:
    # What a client that did not check (an older one) would start: it must not take over.
    server = server_factory(env={EMBEDDED_ENV: "1"})
    server.state_dir.mkdir(parents=True)
    remember_fleet(server.state_dir, CLUSTER)
    done = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "serve"], env=server.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done
    assert f"belongs to the control plane of a fleet (cluster {CLUSTER})" in done.stderr
    assert f"run `coldsnap serve --cluster {CLUSTER}`" in done.stderr
    assert fleet_cluster(server.state_dir) == CLUSTER  # still the fleet's
