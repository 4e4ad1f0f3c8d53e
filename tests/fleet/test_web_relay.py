"""An agent's web relay on its own (no cluster): a real relay, a real TCP server behind it,
and the gateway's route through it."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from coldsnap.server.fleet.relay_route import Relay, RelayRefused, RelayRoute, relay_door
from coldsnap.server.fleet.web_relay import WebRelay, relay_mode, relay_wanted
from coldsnap.settings import SettingError, Settings

TOKEN = "t0ken"


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A TCP server that answers each line with "echo: " and the line."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn, conn.makefile("rwb", buffering=0) as stream:
            for line in stream:
                stream.write(b"echo: " + line)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def relay() -> Iterator[WebRelay]:
    here = {"cs-here": "127.0.0.1"}
    relay = WebRelay(lambda: TOKEN, here.get, host="127.0.0.1")
    yield relay
    relay.close()


def _route(relay: WebRelay, port: int, token: str = TOKEN,
           container: str = "cs-here") -> RelayRoute:
    return RelayRoute(Relay(("127.0.0.1", relay.port), token), container, port)


async def _talk(sock: socket.socket, lines: list[bytes]) -> list[bytes]:
    reader, writer = await asyncio.open_connection(sock=sock)
    answers = []
    for line in lines:
        writer.write(line)
        answers.append(await asyncio.wait_for(reader.readline(), 10))
    writer.close()
    return answers


def test_bytes_pass_both_ways_through_the_relay(relay: WebRelay, echo_port: int) -> None:
    async def run() -> list[bytes]:
        return await _talk(await _route(relay, echo_port).open(), [b"one\n", b"two\n"])

    assert asyncio.run(run()) == [b"echo: one\n", b"echo: two\n"]


def test_a_door_reaches_the_container_through_the_relay(relay: WebRelay,
                                                        echo_port: int) -> None:
    async def run() -> list[bytes]:
        async with relay_door(_route(relay, echo_port)) as door:
            reader, writer = await asyncio.open_unix_connection(door)
            writer.write(b"hi\n")
            line = await asyncio.wait_for(reader.readline(), 10)
            writer.close()
            return [line]

    assert asyncio.run(run()) == [b"echo: hi\n"]


@pytest.mark.parametrize(("token", "container", "port", "words"), [
    ("wrong", "cs-here", None, "wrong token"),
    (TOKEN, "cs-elsewhere", None, "no container cs-elsewhere on this host"),
    (TOKEN, "cs-here", 1, "did not answer"),  # nothing listens on port 1
])
def test_the_relay_refuses_saying_why(relay: WebRelay, echo_port: int, token: str,
                                      container: str, port: int | None, words: str) -> None:
    route = _route(relay, port or echo_port, token, container)
    with pytest.raises(RelayRefused, match=words):
        asyncio.run(route.open())


def test_the_relay_setting_is_checked() -> None:
    assert relay_mode(Settings(fleet_web_relay="Always")) == "always"
    with pytest.raises(SettingError, match="COLDSNAP_FLEET_WEB_RELAY='sometimes' is not one"):
        relay_mode(Settings(fleet_web_relay="sometimes"))
    assert relay_wanted("auto", "10.0.0.2", "10.0.0.1")
    assert not relay_wanted("auto", "10.0.0.1", "10.0.0.1")
    assert relay_wanted("always", "10.0.0.1", "10.0.0.1")
    assert not relay_wanted("never", "10.0.0.2", "10.0.0.1")
