"""Web requests to containers on other hosts: each agent's relay, and the gateway's way in.

A container's web server listens on its own network's address (``10.213.x.2``), which
only its host routes. So each host agent runs a ``WebRelay``: a TCP port on the node
that the control plane's gateway connects to instead. Each connection opens with a
short preamble and its answer, then carries the bytes both ways unchanged, so
requests, streamed bodies, SSE and WebSockets pass as they would directly::

    gateway -> relay   CSRELAY1 TOKEN CONTAINER PORT\\n
    relay -> gateway   OK\\n                  (connected to the container's PORT)
                       ERR why\\n, then closed (a bad token, no such container, refused)

The token is the control plane's (the one its stream bridges use, bridge.py); the
relay connects only to the address of a container of its own host.

Whether the gateway goes through the relay is the control plane's choice per agent
(``relay_wanted``, COLDSNAP_FLEET_WEB_RELAY): ``auto`` relays to agents on another
machine and connects directly on its own; ``always`` relays everywhere (the tests'
simulated hosts share one machine); ``never`` connects directly (the operator routes
each host's container subnet). The gateway side (``RelayRoute``, ``web_route``,
``relay_door``) is in relay_route.py.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import threading
from collections.abc import Callable

from coldsnap.settings import SettingError, Settings

MAGIC = b"CSRELAY1"
HELLO_MAX = 512
HELLO_S = 10.0  # a connection that says nothing this long is dropped
CONNECT_S = 10.0  # the container's port must answer this soon
CHUNK = 1 << 16
MODES = ("auto", "always", "never")

logger = logging.getLogger(__name__)


def relay_mode(settings: Settings) -> str:
    """COLDSNAP_FLEET_WEB_RELAY, checked: auto, always or never."""
    mode = settings.fleet_web_relay.strip().lower()
    if mode not in MODES:
        raise SettingError(f"COLDSNAP_FLEET_WEB_RELAY={settings.fleet_web_relay!r} is not "
                           "one of auto, always, never (docs/fleet.md, Web endpoints)")
    return mode


def relay_wanted(mode: str, agent_ip: str, plane_ip: str) -> bool:
    """Whether the gateway reaches an agent's containers through its relay."""
    return mode == "always" or (mode == "auto" and agent_ip != plane_ip)


class WebRelay:
    """One agent's relay (see the module): an event loop of its own on a thread."""

    def __init__(self, token: Callable[[], str], address_of: Callable[[str], str | None],
                 host: str = "0.0.0.0") -> None:
        self._token = token  # the control plane's current one (a new one takes over)
        self._address_of = address_of  # container id -> its address, None: not here
        self._sock = socket.create_server((host, 0))
        self.port: int = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                        name="web-relay")
        self._thread.start()
        ready.wait(10)

    def close(self) -> None:
        """Stop listening and end the connections it carries."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, sock=self._sock))
        ready.set()
        self._loop.run_forever()
        self._server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.run_until_complete(asyncio.sleep(0.05))  # the closed transports' callbacks
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await asyncio.wait_for(reader.readuntil(b"\n"), HELLO_S)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.close()
            return
        target, why = self._target(hello)
        if target is None:
            logger.warning("refused a web relay connection: %s", why)
            await _refuse(writer, why)
            return
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(*target), CONNECT_S)
        except (TimeoutError, OSError) as exc:
            await _refuse(writer, f"container port {target[0]}:{target[1]} did not answer: "
                          f"{exc or type(exc).__name__}")
            return
        _no_delay(writer)
        _no_delay(upstream[1])
        writer.write(b"OK\n")
        await splice(reader, writer, *upstream)

    def _target(self, hello: bytes) -> tuple[tuple[str, int] | None, str]:
        """The container's (address, port) the hello asks for, or None and why not."""
        parts = hello.split()
        if len(hello) > HELLO_MAX or len(parts) != 4 or parts[0] != MAGIC:
            return None, "not a coldsnap relay hello"
        if not hmac.compare_digest(parts[1], self._token().encode()):
            return None, "wrong token (not this fleet's control plane)"
        container_id = parts[2].decode(errors="replace")
        address = self._address_of(container_id)
        if address is None:
            return None, f"no container {container_id} on this host"
        try:
            port = int(parts[3])
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            return None, f"port {parts[3].decode(errors='replace')!r} is not a TCP port"
        return (address, port), ""


async def splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 other_reader: asyncio.StreamReader, other_writer: asyncio.StreamWriter) -> None:
    """Copy bytes both ways until both sides closed (a half-close passes on)."""
    try:
        await asyncio.gather(_copy(reader, other_writer), _copy(other_reader, writer))
    finally:  # cancelled too (the relay stopping)
        for w in (writer, other_writer):
            w.close()


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (OSError, RuntimeError):  # a side reset: end both ways
        sink.close()


async def _refuse(writer: asyncio.StreamWriter, why: str) -> None:
    try:
        writer.write(f"ERR {why}\n".encode())
        await writer.drain()
    except OSError:
        pass
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


def _no_delay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
