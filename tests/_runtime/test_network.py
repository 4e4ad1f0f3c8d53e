"""The runtime's view of the network: /proc/net/tcp read back, the closed-at-restore
line, and which errors count as network errors (pure logic, no container)."""

from __future__ import annotations

import os
import socket
import urllib.error
from pathlib import Path

import pytest

from coldsnap._runtime import network

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"


def _row(local: str, peer: str, state: str) -> str:
    return f"   0: {local} {peer} {state} 00000000:00000000 00:00000000 00000000     0\n"


def test_connections_are_named_by_their_peer_and_direction(tmp_path: Path) -> None:
    (tmp_path / "tcp").write_text(HEADER + "".join([
        _row("0100007F:223D", "00000000:0000", "0A"),  # 127.0.0.1:8765 listening
        _row("0100007F:223D", "0100007F:D431", "01"),  # accepted from 127.0.0.1:54321
        _row("0200D50A:9C40", "0500000A:01BB", "01"),  # 10.213.0.2 -> 10.0.0.5:443
        _row("0200D50A:9C41", "0500000A:01BB", "08"),  # another, half closed by the peer
        _row("0200D50A:9C42", "0500000A:0050", "06"),  # TIME_WAIT: no process holds it
    ]))
    (tmp_path / "tcp6").write_text(HEADER + _row(
        "00000000000000000000000001000000:9C43",
        "0000000000000000FFFF00000500000A:1F90", "01"))  # ::ffff:10.0.0.5:8080
    found = network.open_tcp_connections(tmp_path)
    assert sorted(found) == ["from 127.0.0.1", "to 10.0.0.5:443", "to 10.0.0.5:443",
                             "to 10.0.0.5:8080"]
    assert network.closed_at_restore(found) == (
        "closed at restore: 1 TCP connection from 127.0.0.1, "
        "2 TCP connections to 10.0.0.5:443, 1 TCP connection to 10.0.0.5:8080")


def test_no_connections_no_line(tmp_path: Path) -> None:
    assert network.open_tcp_connections(tmp_path) == []  # no /proc files at all
    assert network.closed_at_restore([]) == ""


def test_the_namespace_the_tests_run_in_is_read(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            assert f"to 127.0.0.1:{port}" in network.open_tcp_connections()


def test_a_connection_is_named_with_the_process_holding_it() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            owners = network.connection_owners()
    comm = Path("/proc/self/comm").read_text().strip()
    assert f"process {os.getpid()} ({comm})" in owners[f"to 127.0.0.1:{port}"]


@pytest.mark.parametrize(("error", "expected"), [
    (socket.gaierror(-3, "Temporary failure in name resolution"), True),
    (OSError(101, "Network is unreachable"), True),
    (ConnectionRefusedError(111, "Connection refused"), True),
    (urllib.error.URLError(OSError(101, "Network is unreachable")), True),
    (FileNotFoundError(2, "No such file"), False),
    (ValueError("bad"), False),
])
def test_network_errors_are_told_apart(error: BaseException, expected: bool) -> None:
    assert network.is_network_error(error) is expected


def test_the_hint_is_added_only_where_the_network_is_blocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    error = OSError(101, "Network is unreachable")
    network.add_hint_if_blocked(error)
    assert not getattr(error, "__notes__", [])
    monkeypatch.setenv("COLDSNAP_BLOCK_NETWORK", "1")
    network.add_hint_if_blocked(error)
    network.add_hint_if_blocked(ValueError("not a network error"))
    assert error.__notes__ == [network.BLOCKED_HINT]
