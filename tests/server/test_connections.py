"""server/connections.py without a server: shedding a client while out of descriptors."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from coldsnap.server.connections import Connections
from coldsnap.settings import Settings
from coldsnap.wire.framing import read_message


def _connections(tmp_path: Path) -> Connections:
    return Connections(Settings(state_dir=tmp_path), "token", lambda *_: None,
                       threading.Event(), max_connections=4)


def test_shedding_with_no_client_waiting_does_not_block(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        done = threading.Event()
        thread = threading.Thread(target=lambda: (_connections(tmp_path)._shed_one(listener),
                                                  done.set()), daemon=True)
        thread.start()
        assert done.wait(5), "the shed accept blocked with no client waiting"


def test_shedding_answers_the_waiting_client_busy(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as client:
        connections = _connections(tmp_path)
        connections._shed_one(listener)
        reply = read_message(client.makefile("rb"))[0]
        assert reply["error"]["kind"] == "busy"
        assert "out of file descriptors" in reply["error"]["message"]
        assert connections._spare is not None, "the spare descriptor is taken back"
