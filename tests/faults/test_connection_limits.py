"""Faults: clients that hold connections and send nothing, or too many clients at once.
Silent connections are closed after COLDSNAP_IDLE_TIMEOUT_S, whole or half-sent; one
connection past COLDSNAP_MAX_CONNECTIONS is answered "server busy", not left hanging."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from coldsnap.client import Client
from coldsnap.wire.errors import ServerUnavailable
from coldsnap.wire.framing import read_message, write_message
from coldsnap.wire.token import read_token
from tests.conftest import ServerHandle


def _connect(server: ServerHandle) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(server.settings.socket_path))
    return sock


def _served(server: ServerHandle) -> socket.socket:
    """A connection the server serves (it answered a ping on it), kept open."""
    token = read_token(server.settings.token_path)
    deadline = time.monotonic() + 5
    while True:  # the fixture's own connection may not be released yet: then "busy"
        sock = _connect(server)
        stream = sock.makefile("rwb")
        write_message(stream, {"op": "ping", "token": token})
        if read_message(stream)[0]["ok"]:
            return sock
        sock.close()
        assert time.monotonic() < deadline, "the server never took a connection"
        time.sleep(0.05)


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server hung up on ``sock``; fails if it did not in time."""
    start = time.monotonic()
    sock.settimeout(seconds)
    assert sock.recv(1) == b"", "the server closed the connection without a word"
    return time.monotonic() - start


@pytest.mark.parametrize("sent", [b"", struct.pack(">I", 40) + b'{"op": "pi'],
                         ids=["idle", "half-sent"])
def test_a_silent_connection_is_closed_after_the_idle_timeout(
    server_factory: type[ServerHandle], sent: bytes,
) -> None:
    server = server_factory(env={"COLDSNAP_IDLE_TIMEOUT_S": "1"}).start()
    with _connect(server) as sock:
        sock.sendall(sent)
        assert 0.5 < _closed_within(sock, 10) < 5
    conn = Client(server.settings)
    try:
        assert conn.ping()["ok"] is True
    finally:
        conn.close()


def test_one_connection_past_the_limit_is_told_the_server_is_busy(
    server_factory: type[ServerHandle],
) -> None:
    server = server_factory(env={"COLDSNAP_MAX_CONNECTIONS": "3"}).start()
    held = [_served(server) for _ in range(3)]
    conn = Client(server.settings)
    try:
        start = time.monotonic()
        with pytest.raises(ServerUnavailable, match="server busy.*3 connections at once"
                           ".*COLDSNAP_MAX_CONNECTIONS"):
            conn.ping()
        assert time.monotonic() - start < 5
        held.pop().close()  # once the server notices, the slot is free again
        held.append(_served(server))
    finally:
        conn.close()
        for sock in held:
            sock.close()
