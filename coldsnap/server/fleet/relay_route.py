"""The gateway's side of the agents' web relays (web_relay.py): how to reach a container.

``web_route`` says whether a container's web port is reached through its host's
relay (its agent is on another machine, or COLDSNAP_FLEET_WEB_RELAY=always) and
how: a ``RelayRoute`` opens a socket that, once the relay said OK, is as good as a
direct connection to the container's port. The lean path (gateway/exchange.py)
hands that socket to its kept-alive ``Upstreams``, keyed by ``RelayRoute.key`` (one
per agent, container and port); the aiohttp path (gateway/proxy.py: WebSockets,
``Expect``) connects through ``relay_door``, a unix socket of its own for one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator

from coldsnap.engine import Container
from coldsnap.server.fleet.bridge import SocketContainer
from coldsnap.server.fleet.web_relay import CONNECT_S, MAGIC, splice

REPLY_MAX = 512
DOOR_CLOSE_S = 5.0


class RelayRefused(ConnectionRefusedError):
    """The relay, or the container's port behind it, refused: the request never left."""


@dataclasses.dataclass(frozen=True)
class Relay:
    """One agent's relay, as its containers carry it: where it listens, and the token."""

    address: tuple[str, int]
    token: str


@dataclasses.dataclass(frozen=True)
class RelayRoute:
    """One container's web port through its host's relay."""

    relay: Relay
    container_id: str
    port: int

    @property
    def key(self) -> str:
        """Upstreams' key: connections are kept per agent, container and port."""
        host, relay_port = self.relay.address
        return f"relay:{host}:{relay_port}/{self.container_id}:{self.port}"

    async def open(self) -> socket.socket:
        """A socket to the container's port, through the relay; RelayRefused saying why."""
        try:
            return await asyncio.wait_for(self._open(), CONNECT_S * 2)
        except TimeoutError:
            raise RelayRefused(f"host relay {self._where()} did not answer within "
                               f"{CONNECT_S * 2:g} s") from None

    async def _open(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        host, port = self.relay.address
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            hello = f"{self.relay.token} {self.container_id} {self.port}\n".encode()
            await loop.sock_sendall(sock, MAGIC + b" " + hello)
            reply = b""
            while not reply.endswith(b"\n") and len(reply) < REPLY_MAX:
                byte = await loop.sock_recv(sock, 1)  # one at a time: what follows is HTTP's
                if not byte:
                    break
                reply += byte
        except OSError as exc:
            sock.close()
            raise RelayRefused(f"host relay {self._where()}: {exc}") from None
        if reply != b"OK\n":
            sock.close()
            why = reply.decode(errors="replace").strip().removeprefix("ERR ") or "closed"
            raise RelayRefused(f"host relay {self._where()} refused: {why}")
        return sock

    def _where(self) -> str:
        host, port = self.relay.address
        return f"{host}:{port} (container {self.container_id}, port {self.port})"


def web_route(container: Container, port: int) -> RelayRoute | None:
    """How the gateway reaches ``container``'s web ``port``: None directly, at
    ``container.address``; else through its host's relay."""
    if isinstance(container, SocketContainer) and container.relay is not None:
        return RelayRoute(container.relay, container.id, port)
    return None


@contextlib.asynccontextmanager
async def relay_door(route: RelayRoute) -> AsyncIterator[str]:
    """A unix socket whose connections reach ``route``'s container
    through the relay, for a client library that can only dial an address. The first
    connection is opened before the door (RelayRefused from here: the request never left)."""
    first: list[socket.socket] = [await route.open()]
    splices: set[asyncio.Task[None]] = set()

    async def enter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = first.pop() if first else await route.open()
            other = await asyncio.open_connection(sock=sock)
        except OSError:
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            splices.add(task)
        await splice(reader, writer, *other)

    # A path in a private dir (0700), not an abstract name: uvloop's unix sockets take
    # only paths, and no other local user may use the door meanwhile.
    home = tempfile.mkdtemp(prefix="coldsnap-door-")
    name = os.path.join(home, "door")
    server = await asyncio.start_unix_server(enter, path=name)
    try:
        yield name
    finally:
        server.close()
        shutil.rmtree(home, ignore_errors=True)
        for sock in first:
            sock.close()
        # The client closed its connections: their splices end as the close passes on.
        if splices:
            _, late = await asyncio.wait(splices, timeout=DOOR_CLOSE_S)
            for task in late:
                task.cancel()
