"""The client's socket limits, against a listener that never answers: no hang, a
message naming the setting; a dead pooled socket is left for a fresh one."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from coldsnap.client import Client
from coldsnap.exception import ConnectionError
from coldsnap.settings import Settings
from coldsnap.transport import NoServer
from coldsnap.wire.errors import ServerUnavailable


def silent_client(tmp_path: Path) -> tuple[Client, socket.socket]:
    settings = Settings(state_dir=tmp_path, client_timeout_s=0.3)
    settings.token_path.write_text("t" * 64)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(settings.socket_path))
    listener.listen(8)  # accepts (the kernel does), never answers: a frozen server
    return Client(settings), listener


def test_a_server_that_never_answers_fails_the_request_within_the_timeout(
    tmp_path: Path,
) -> None:
    client, listener = silent_client(tmp_path)
    with listener:
        started = time.monotonic()
        with pytest.raises(ServerUnavailable, match=r"did not answer 'apps_ls' within 0.3 s "
                           r"\(COLDSNAP_CLIENT_TIMEOUT_S\); is it overloaded, or stopped"):
            client.request("apps_ls")
        assert time.monotonic() - started < 2.0


def test_a_long_call_fails_when_the_server_stops_answering_pings(tmp_path: Path) -> None:
    client, listener = silent_client(tmp_path)
    with listener:
        with pytest.raises(ServerUnavailable, match=r"^while waiting for the reply to 'call'; "
                           r"the call may have run: .* did not answer 'ping'"):
            client.call("app", "f", None, b"args")


def test_nothing_listening_is_no_server(tmp_path: Path) -> None:
    client = Client(Settings(state_dir=tmp_path, client_timeout_s=0.3))
    with pytest.raises(NoServer, match="no coldsnap server answers on .*Start one with"):
        client._exchange({"op": "ping"}, None, restart=False)  # the client's own kind
    with pytest.raises(ConnectionError) as seen:  # what callers get: the public kind
        client.ping()
    assert type(seen.value) is ConnectionError and "Start one with" in str(seen.value)
