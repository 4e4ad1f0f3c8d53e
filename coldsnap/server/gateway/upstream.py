"""The gateway's connections to the servers it passes requests to (a container's web
server, or the gateway's own aiohttp handlers), kept alive and reused.

An ``Upstream`` is one connection: it parses the responses that come back on it
(httptools, the C parser uvicorn uses) and hands their parts to the ``Receiver``
that sent the request. ``Upstreams`` keeps the idle ones, per address.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

import httptools

# An idle connection is closed after this long (containers' servers keep theirs 300 s).
IDLE_S = 60.0


class Receiver(Protocol):
    """What a response's parts go to, as they arrive."""

    def response_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                      keep_alive: bool) -> None: ...

    def response_body(self, data: bytes) -> None: ...

    def response_end(self) -> None: ...

    def upstream_lost(self, exc: Exception | None) -> None: ...

    def flush(self) -> None: ...

    def upstream_paused(self, paused: bool) -> None: ...


class Upstream(asyncio.Protocol):
    """One connection to a server; at most one request on it at a time."""

    def __init__(self, upstreams: Upstreams, address: str) -> None:
        self.upstreams = upstreams
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.receiver: Receiver | None = None
        self.closed = False
        self.used = False  # a request went out on it before this one
        self.head_only = False  # the request was HEAD: the response has no body
        self._parser = httptools.HttpResponseParser(self)
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._idle_timer: asyncio.TimerHandle | None = None

    # asyncio's side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        receiver = self.receiver
        if receiver is None:  # bytes nobody asked for: the connection is not reusable
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()
            receiver.upstream_lost(exc)
            return
        receiver.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_idle_timer()
        self.upstreams.forget(self)
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.upstream_lost(exc)

    def pause_writing(self) -> None:
        if self.receiver is not None:
            self.receiver.upstream_paused(True)

    def resume_writing(self) -> None:
        if self.receiver is not None:
            self.receiver.upstream_paused(False)

    # the parser's side (httptools calls these while feed_data runs)
    def on_message_begin(self) -> None:
        self._reason = b""
        self._headers = []

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.receiver is None:
            return
        status = self._parser.get_status_code()
        self.receiver.response_head(status, self._reason, self._headers,
                                    self._parser.should_keep_alive())
        if self.head_only and status >= 200:
            # The parser can't be told the response to HEAD has no body: the
            # connection is done with after it.
            receiver, self.receiver = self.receiver, None
            self.close()
            receiver.response_end()

    def on_body(self, body: bytes) -> None:
        if self.receiver is not None:
            self.receiver.response_body(body)

    def on_message_complete(self) -> None:
        if self.receiver is not None:
            self.receiver.response_end()

    # the gateway's side
    def send(self, receiver: Receiver, data: list[bytes], head_only: bool) -> None:
        self._cancel_idle_timer()
        self.receiver = receiver
        self.head_only = head_only
        assert self.transport is not None
        self.transport.writelines(data)

    def write(self, data: list[bytes]) -> None:
        if self.transport is not None and not self.closed:
            self.transport.writelines(data)

    def done(self, reusable: bool) -> None:
        """The exchange on it is over: keep it for the next request, or close it."""
        self.receiver = None
        if reusable and not self.closed:
            self.used = True
            self.upstreams.keep(self)
            self._idle_timer = asyncio.get_running_loop().call_later(IDLE_S, self.close)
        else:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None


class Upstreams:
    """Idle connections by address (``HOST:PORT``, or a unix socket's name)."""

    def __init__(self) -> None:
        self._idle: dict[str, collections.deque[Upstream]] = {}

    async def get(self, address: str,
                  dial: Callable[[], Awaitable[socket.socket]] | None = None) -> Upstream:
        """An idle connection to ``address``, else a new one (OSError if refused).
        ``dial``: opens the new one's socket (a host's relay, fleet/relay_route.py);
        ``address`` is then only its key."""
        idle = self._idle.get(address)
        while idle:
            upstream = idle.pop()
            if not upstream.closed:
                return upstream
        loop = asyncio.get_running_loop()
        if dial is not None:
            sock = await dial()
            _, proto = await loop.create_connection(lambda: Upstream(self, address), sock=sock)
        elif address.startswith("\0") or address.startswith("/"):
            _, proto = await loop.create_unix_connection(lambda: Upstream(self, address),
                                                         address)
        else:
            host, _, port = address.rpartition(":")
            _, proto = await loop.create_connection(lambda: Upstream(self, address),
                                                    host, int(port))
        return proto

    def keep(self, upstream: Upstream) -> None:
        self._idle.setdefault(upstream.address, collections.deque()).append(upstream)

    def forget(self, upstream: Upstream) -> None:
        idle = self._idle.get(upstream.address)
        if idle is not None:
            try:
                idle.remove(upstream)
            except ValueError:
                pass
            if not idle:
                del self._idle[upstream.address]

    def close(self) -> None:
        for idle in list(self._idle.values()):
            for upstream in list(idle):
                upstream.close()
        self._idle.clear()
