"""The network in the snapshot phase (tests/apps/snapshot_network.py, real CRIU):
loopback is up, the world is reachable, a listener opened there serves from every
restored copy, a connection held across the dump comes back closed and the copy's
log names it; ``block_network=True`` leaves loopback alone, in every phase."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server, require_criu, wait_for, write_app
from tests.isolation.outside import Outside

APP = "snapshot-network"


@pytest.fixture(scope="module")
def net_server(outside: Outside, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[ServerHandle]:
    require_criu()
    source = (APPS / "snapshot_network.py").read_text()
    source = source.replace('OUTSIDE = "10.214.0.2"', f"OUTSIDE = {outside.address!r}")
    app_file = write_app(tmp_path_factory.mktemp("app"), "snapshot_network", source)
    for handle in module_server("criu"):
        handle.cli("deploy", str(app_file))
        yield handle


def call(server: ServerHandle, target: str, check: bool = True) -> dict:
    """``target`` (``Cls().method`` or a function) called once; errors as plain data."""
    handle = (f"coldsnap.Cls.from_name({APP!r}, {target.split('.')[0]!r})()"
              f".{target.split('.')[1]}" if "." in target
              else f"coldsnap.Function.from_name({APP!r}, {target!r})")
    result = server.python(
        "import json, coldsnap\n"
        "try:\n"
        f"    print(json.dumps({handle}.remote()))\n"
        "except Exception as exc:\n"
        "    print(json.dumps({'error': type(exc).__name__, 'message': str(exc),\n"
        "                      'notes': getattr(exc, '__notes__', [])}))\n", check=check)
    answer: dict = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def restored_boots(server: ServerHandle, tag: str) -> int:
    rows: list[dict] = json.loads(server.cli("snapshots", "ls", "--json").stdout)
    return sum(r.get("restores", 0) for r in rows if r.get("app") == APP and tag in r["key"])


def drain(server: ServerHandle) -> None:
    """Every container of the app goes: the next call boots a new copy."""
    server.cli("apps", "drain", APP)


def test_a_server_started_in_the_snapshot_phase_serves_from_restored_copies(
    net_server: ServerHandle,
) -> None:
    for attempt in ("first copy", "second copy"):
        answer = call(net_server, "LocalServer.ask")
        assert answer["restored"], (attempt, answer)
        assert answer["before"] == answer["after"] == "healthy", (attempt, answer)
        assert answer["server_pid_alive"], answer
        assert answer["seconds"] < 5, answer  # served at once, no restart of the server
        drain(net_server)
    assert restored_boots(net_server, "LocalServer") >= 2


@pytest.mark.parametrize("cls", ["Outbound", "OutboundOwnRoot"])
def test_the_snapshot_phase_reaches_another_host_and_a_held_connection_is_closed(
    net_server: ServerHandle, outside: Outside, cls: str,
) -> None:
    before = outside.received.read_text().count("8081 closed")
    line = f"closed at restore: 1 TCP connection to {outside.address}:8081"
    logged = len(_closed_lines(net_server, line))
    answer = call(net_server, f"{cls}.state")
    assert answer["restored"], answer
    assert answer["in_snapshot_phase"] == "ok:hi"
    assert answer["loopback_in_snapshot_phase"] == "ok:lo"
    assert answer["echo_before"] == "ping"
    # Closed at restore: a write or a read says so at once, never hangs.
    assert answer["held_after"] in ("BrokenPipeError", "ConnectionResetError", "closed"), answer
    # ...and the peer saw it close when the snapshot phase's processes ended.
    assert outside.received.read_text().count("8081 closed") > before
    assert answer["now"] == "ok:hi"  # the restored copy's own namespace reaches out too
    # This copy's log line, naming the connection (other tests' copies log theirs).
    wait_for(lambda: len(_closed_lines(net_server, line)) > logged, 30, f"a line {line!r}")


def test_a_connection_waiting_in_an_accept_queue_is_dropped_not_fatal(
    net_server: ServerHandle,
) -> None:
    # CRIU refuses such a dump ("In-flight connection") unless told to drop them.
    answer = call(net_server, "Pending.ask")
    assert answer["restored"], answer
    assert answer["queued"] == "TimeoutError" and answer["now"] == "ok:lo", answer
    wait_for(lambda: _closed_lines(net_server, "1 TCP connection to 127.0.0.1:8124"), 30,
             "the closed-at-restore line naming the queued connection's client end")


def _closed_lines(server: ServerHandle, naming: str) -> list[str]:
    """The app's closed-at-restore log lines that contain ``naming``."""
    logs = server.cli("logs", APP, "--lines", "100000").stdout
    return [line for line in logs.splitlines() if "closed at restore" in line
            and naming in line]


@pytest.mark.parametrize("target", ["Blocked.state", "blocked_plain"])
def test_block_network_leaves_loopback_alone_in_every_phase(
    net_server: ServerHandle, target: str
) -> None:
    answer = call(net_server, target)
    assert answer["restored"] == (target == "Blocked.state"), answer
    assert answer["interfaces"] == ["lo"]
    assert answer["loopback"] == "ok:lo"
    assert answer["outside"] != "ok:hi", answer
    if target == "Blocked.state":
        assert answer["loopback_in_snapshot_phase"] == "ok:lo"
        assert answer["outside_in_snapshot_phase"] != "ok:hi", answer


def test_block_network_errors_carry_the_hint(net_server: ServerHandle) -> None:
    answer = call(net_server, "Blocked.download")
    assert answer["error"] == "URLError", answer
    assert any("block_network=True" in note for note in answer["notes"]), answer

    failed = call(net_server, "BlockedDownload.run")  # its enter(snap=True) fails
    assert failed["error"] == "OSError", failed
    told = " ".join([failed["message"], *failed["notes"]])
    assert "Network is unreachable" in told, failed
    assert "block_network=True" in told and "no network but loopback" in told, failed


def test_a_listener_on_the_snapshot_phase_s_own_address_falls_back_with_the_reason(
    net_server: ServerHandle,
) -> None:
    answer = call(net_server, "OwnAddress.ask")
    assert not answer["restored"] and answer["bound"].startswith("10.213."), answer
    logs = net_server.cli("logs", APP).stdout
    assert "Can't bind inet socket" in logs and "booting without a snapshot" in logs, logs
    assert "bind to 0.0.0.0 or 127.0.0.1" in logs, logs


def test_the_app_file_in_tests_apps_is_what_the_tests_deploy() -> None:
    # The fixture rewrites one line of it; a changed line would go unnoticed.
    assert 'OUTSIDE = "10.214.0.2"' in Path(APPS / "snapshot_network.py").read_text()
