"""The gateway's listening side: a lean HTTP/1.1 proxy for requests to web endpoints.

Every request is parsed here (httptools). One for a web endpoint that may be served
(it exists, its token is good, its body is not too large, it is no WebSocket) takes
an input slot of a container and goes straight to the container's server; its
response comes back as it is produced (``exchange.Exchange``). Everything else
(unknown URLs, refused tokens, WebSockets, the server's own pages) goes to the
gateway's aiohttp handlers on a socket of their own (``proxy.Proxy``), which answer
it: a WebSocket's connection becomes a plain pipe to them after its request.

Requests on one connection are answered in order; a request that arrives while
one is being answered waits (HTTP/1.1 pipelining).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import httptools

from coldsnap.server.errors import ApiError
from coldsnap.server.gateway.exchange import Exchange, Target
from coldsnap.server.gateway.heads import reply
from coldsnap.server.gateway.routes import route
from coldsnap.wire import web

if TYPE_CHECKING:
    from coldsnap.server.gateway.proxy import Proxy
    from coldsnap.server.gateway.upstream import Upstreams



class Front(asyncio.Protocol):
    """One client connection."""

    def __init__(self, proxy: Proxy, upstreams: Upstreams, internal: str,
                 count: Callable[[int], None]) -> None:
        self.proxy = proxy
        self.upstreams = upstreams
        self.internal = internal  # the aiohttp handlers' socket
        self.count = count  # a response's status, for /metrics (the handlers count theirs)
        self.transport: asyncio.Transport | None = None
        self.peer = b""
        self.current: Exchange | None = None
        self.waiting: collections.deque[Exchange] = collections.deque()
        self.pipe: Pipe | None = None  # a WebSocket's connection, once piped
        self._parser = httptools.HttpRequestParser(self)
        self._reading: Exchange | None = None  # the request whose body is arriving
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._upgrade: Exchange | None = None

    # asyncio's side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]).encode() if isinstance(peer, tuple) else b""

    def data_received(self, data: bytes) -> None:
        if self.pipe is not None:
            self.pipe.write(data)
            return
        if self._upgrade is not None:  # waiting to become a pipe
            self._upgrade.leftover += data
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._start_upgrade(data[exc.args[0]:])
        except httptools.HttpParserError as exc:
            self._bad_request(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pipe is not None:
            self.pipe.close()
        for exchange in (self.current, *self.waiting):
            if exchange is not None:
                exchange.client_gone()
        self.waiting.clear()

    def pause_writing(self) -> None:
        if self.current is not None:
            self.current.client_paused(True)
        if self.pipe is not None and self.pipe.transport is not None:
            self.pipe.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.current is not None:
            self.current.client_paused(False)
        if self.pipe is not None and self.pipe.transport is not None:
            self.pipe.transport.resume_reading()

    # the parser's side
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        exchange = Exchange(self, parser.get_method(), self._url, self._headers,
                            parser.should_keep_alive(), parser.get_http_version() == "1.1")
        exchange.target = self._target(exchange, parser.should_upgrade())
        self._reading = exchange
        if exchange.target.kind == "upgrade":
            self._upgrade = exchange
        elif self.current is None:
            self.current = exchange
            exchange.start()
        else:
            self.waiting.append(exchange)
            self.hold(True)

    def on_body(self, body: bytes) -> None:
        if self._reading is not None:
            self._reading.request_body(body)

    def on_message_complete(self) -> None:
        if self._reading is not None:
            self._reading.request_end()
            self._reading = None

    # the exchanges' side
    def hold(self, held: bool) -> None:
        """Stop (or go on) reading from the client."""
        if self.transport is not None and not self.transport.is_closing():
            if held:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def finished(self, exchange: Exchange, keep_open: bool) -> None:
        """``exchange`` was answered: close the connection or go on with the next."""
        if exchange is not self.current:
            return
        self.current = None
        if not keep_open:
            if self.transport is not None:
                self.transport.close()
            return
        if self._upgrade is not None and not self.waiting:
            self._upgrade.start()
            return
        if self.waiting:
            self.current = self.waiting.popleft()
            self.current.start()
        if not self.waiting:
            self.hold(False)

    def _target(self, exchange: Exchange, upgrade: bool) -> Target:
        """Where a request goes: to a container's server (when all is well), else to
        the aiohttp handlers, which answer the rest."""
        if upgrade:
            return Target("upgrade")
        host = exchange.header(b"host") or b""
        where = route(host.decode("latin-1"), exchange.url.decode("latin-1"))
        if where is None:
            return Target("internal")
        try:
            pool, endpoint = self.proxy.resolve(where.app, where.label)
        except ApiError:
            return Target("internal")
        if endpoint.requires_proxy_auth and not self.proxy.authorized(*_token_of(exchange)):
            return Target("internal")
        timeout_s = pool.fn.options.timeout or self.proxy.default_timeout_s
        target = Target("container", pool, endpoint, where, timeout_s)
        if exchange.header(b"expect") is not None and not exchange.declared_too_large():
            return Target("internal")  # its "100 Continue" is the handlers' to send
        return target

    def _start_upgrade(self, leftover: bytes) -> None:
        exchange = self._upgrade
        if exchange is None:  # CONNECT and the like: not ours to serve
            self._bad_request(None)
            return
        exchange.leftover = leftover
        if self.current is None:
            exchange.start()

    def _bad_request(self, exc: Exception | None) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        what = f" ({exc})" if exc else ""
        self.transport.writelines(reply(400, f"coldsnap gateway: a malformed HTTP request"
                                        f"{what}\n", keep_alive=False))
        self.transport.close()


class Pipe(asyncio.Protocol):
    """A connection to the aiohttp handlers that carries a client's bytes as they are
    (a WebSocket, after its request)."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()

    def pause_writing(self) -> None:
        self.client.pause_reading()

    def resume_writing(self) -> None:
        self.client.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _token_of(exchange: Exchange) -> tuple[str | None, str | None]:
    def value(*names: str) -> str | None:
        for name in names:
            found = exchange.header(name.lower().encode())
            if found is not None:
                return found.decode("latin-1")
        return None

    return (value(web.KEY_HEADER, web.MODAL_KEY_HEADER),
            value(web.SECRET_HEADER, web.MODAL_SECRET_HEADER))


def front_factory(proxy: Proxy, upstreams: Upstreams, internal: str,
                  count: Callable[[int], None]) -> Any:
    return lambda: Front(proxy, upstreams, internal, count)
