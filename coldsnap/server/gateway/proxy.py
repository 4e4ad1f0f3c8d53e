"""The gateway's aiohttp handlers: what its lean path (front.py) does not serve
itself comes here, on a socket of the gateway's own: unknown URLs, requests without
a valid token, WebSockets (relayed message by message), requests that expect a
"100 Continue". Such a request finds its endpoint, takes an input slot of a
container (booting one if none is free), and is passed through, streamed both ways.

What a client sees when it goes wrong (docs/web.md): 404 no such endpoint, 401
no valid proxy token, 413 body over COLDSNAP_HTTP_MAX_BODY_BYTES, 502 the
container died or its server broke the exchange, 503 the function could not
boot or the app is going away, 504 the request ran past the function's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import aiohttp
from aiohttp import web as aioweb
from multidict import CIMultiDict

from coldsnap.server.errors import ApiError
from coldsnap.server.fleet.relay_route import RelayRefused, RelayRoute, relay_door, web_route
from coldsnap.server.gateway import messages
from coldsnap.server.gateway.routes import Route, route
from coldsnap.wire import web
from coldsnap.wire.errors import NOT_FOUND, TIMEOUT
from coldsnap.wire.web import WebEndpoint

logger = logging.getLogger(__name__)

# Not passed on: they describe one hop, not the request (RFC 9110 7.6.1).
HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-authenticate",
                         "proxy-authorization", "te", "trailer", "transfer-encoding",
                         "upgrade", "proxy-connection", "host", "content-length"})
CHUNK = 64 * 1024
# A response body up to this size, with its length known, is passed on in one piece.
SMALL_BODY = 64 * 1024
# Requests that may wait for a container at once (a thread each, made as needed).
MAX_WAITING = 1024
# The request's key of the response already sent (headers out: no error status now).
STARTED = "coldsnap_started"
# The request's key set when its container's server failed it (a crash, most likely).
BROKEN = "coldsnap_broken"
TOO_LARGE = "coldsnap_too_large"
PEER_HEADER = "Coldsnap-Peer"


class BodyTooLarge(Exception):
    pass


class Proxy:
    """The gateway's request handler (one per gateway; its session is shared)."""

    def __init__(self, resolve: Callable[[str, str], tuple[Any, WebEndpoint]],
                 authorized: Callable[[str | None, str | None], bool], max_body: int,
                 default_timeout_s: float, lease_wait_s: float = 300.0) -> None:
        self.resolve = resolve  # (app, label) -> (pool, endpoint)
        self.authorized = authorized
        self.max_body = max_body
        self.default_timeout_s = default_timeout_s
        # How long a request may wait for an input slot (a boot included): the lean
        # path's bound (exchange.py), where the function's timeout starts after it.
        self.lease_wait_s = lease_wait_s
        self.session: aiohttp.ClientSession | None = None
        # Threads that wait for input slots (each may wait out a boot).
        self.leases = ThreadPoolExecutor(max_workers=MAX_WAITING, thread_name_prefix="lease")

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, force_close=False)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None), skip_auto_headers=("User-Agent",))
        # aiohttp sends an idempotent request again when a kept-alive connection breaks
        # under it. A container that died (or crashed on purpose) running it did run
        # it: sent again, the request would run twice and the client would get a
        # refused connection, not "it died". Its pinned version has no public switch.
        self.session._retry_connection = False

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        self.leases.shutdown(wait=False, cancel_futures=True)

    async def handle(self, request: aioweb.Request) -> aioweb.StreamResponse:
        where = route(request.host, request.raw_path)
        if where is None:
            return _text(404, "coldsnap gateway: this URL names no web endpoint; endpoint "
                         "URLs look like http://<app>--<label>.localhost:PORT/ or "
                         f"http://HOST:PORT{web.PATH_PREFIX}<app>--<label>/ "
                         "(`coldsnap deploy` prints them)\n")
        try:
            pool, endpoint = self.resolve(where.app, where.label)
        except ApiError as exc:
            status = 404 if exc.kind == NOT_FOUND else 503
            return _text(status, f"coldsnap gateway: {exc.message}\n")
        if endpoint.requires_proxy_auth and not self.authorized(*_token_of(request)):
            return _text(401, f"coldsnap gateway: {where.app}--{where.label} requires proxy "
                         f"auth: send the headers {web.KEY_HEADER} and {web.SECRET_HEADER} of "
                         "a token (`coldsnap token create`)\n")
        if (request.content_length or 0) > self.max_body:
            return self._too_large()
        timeout_s = pool.fn.options.timeout or self.default_timeout_s
        try:
            return await asyncio.wait_for(
                self._serve(request, where, pool, endpoint, timeout_s), timeout_s)
        except TimeoutError:
            return _unless_started(request) or _text(
                504, messages.timed_out(pool.fn.label, timeout_s))

    async def lease(self, pool: Any, timeout_s: float) -> Any:
        """``pool.lease`` on a thread of our own (it blocks while a container boots). A
        lease that comes after the request gave up is released at once."""
        lease = pool.try_lease()  # a free slot now: no thread hop
        if lease is not None:
            return lease
        future = self.leases.submit(pool.lease, timeout_s)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(_release_late_lease)
            raise

    async def _serve(self, request: aioweb.Request, where: Route, pool: Any,
                     endpoint: WebEndpoint, timeout_s: float) -> aioweb.StreamResponse:
        """Take an input slot and pass the request through. A container that refused
        the connection (it died just before: the request never reached it) is left to
        the pool to notice, and another one tried, once."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            try:
                lease = await self.lease(pool, timeout_s)
            except ApiError as exc:
                status = 504 if exc.kind == TIMEOUT else 503
                return _text(status, f"coldsnap gateway: {exc.message}\n")
            try:
                return await self._exchange(request, where, endpoint, lease)
            except (aiohttp.ClientConnectorError, RelayRefused) as exc:
                if attempt == 2:
                    return _text(502, messages.refused(lease.worker.id, exc, where.app))
            finally:
                if _broken(request):  # the pool must see it dead before it hands it out
                    await loop.run_in_executor(None, lease.worker.exited.wait, 1.0)
                lease.release()
        raise AssertionError("unreachable")

    async def _exchange(self, request: aioweb.Request, where: Route, endpoint: WebEndpoint,
                        lease: Any) -> aioweb.StreamResponse:
        worker = lease.worker
        port = worker.web_ports.get(endpoint.name)
        if port is None:
            return _text(502, messages.no_port(worker.id, endpoint.name))
        url = f"http://{worker.container.address}:{port}{where.path}"
        headers = _forwarded(request, where)
        try:
            async with self._session_to(web_route(worker.container, port)) as session:
                if _is_websocket(request):
                    return await self._websocket(session, request, url, headers)
                return await self._http(session, request, url, headers)
        except (aiohttp.ClientError, ConnectionError, BodyTooLarge) as exc:
            # The client library wraps what the body's reader raised.
            if request.get(TOO_LARGE):
                return _unless_started(request) or self._too_large()
            request[BROKEN] = True
            if isinstance(exc, (aiohttp.ClientConnectorError, RelayRefused)):
                raise  # the request never reached the container: another may take it
            await asyncio.get_running_loop().run_in_executor(None, worker.exited.wait, 1.0)
            return _unless_started(request) or _text(
                502, messages.broke(worker.id, lease.lost, exc, where.app))

    @contextlib.asynccontextmanager
    async def _session_to(self, relayed: RelayRoute | None
                          ) -> AsyncIterator[aiohttp.ClientSession]:
        """The shared session, or for a container behind its host's relay (docs/fleet.md)
        one of this request's own, through a door to the relay (RelayRefused: not reached)."""
        assert self.session is not None
        if relayed is None:
            yield self.session
            return
        async with relay_door(relayed) as door, aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(door, force_close=True), auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",)) as session:
            session._retry_connection = False  # as the shared one's (see start)
            yield session

    async def _http(self, session: aiohttp.ClientSession, request: aioweb.Request, url: str,
                    headers: CIMultiDict[str]) -> aioweb.StreamResponse:
        body = self._body(request) if request.body_exists else None
        if request.content_length is not None:
            headers["Content-Length"] = str(request.content_length)
        async with session.request(request.method, url, headers=headers, data=body,
                                        allow_redirects=False) as upstream:
            length = upstream.content_length
            if length is not None and length <= SMALL_BODY and request.method != "HEAD":
                return aioweb.Response(status=upstream.status, reason=upstream.reason,
                                       body=await upstream.read(),
                                       headers=_passed_on(upstream.headers))
            response = aioweb.StreamResponse(status=upstream.status, reason=upstream.reason,
                                             headers=_passed_on(upstream.headers))
            if length is not None:
                response.content_length = length
            else:
                response.enable_chunked_encoding()
            await response.prepare(request)
            request[STARTED] = response
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _body(self, request: aioweb.Request) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in request.content.iter_chunked(CHUNK):
            seen += len(chunk)
            if seen > self.max_body:
                request[TOO_LARGE] = True
                raise BodyTooLarge()
            yield chunk

    async def _websocket(self, session: aiohttp.ClientSession, request: aioweb.Request,
                         url: str, headers: CIMultiDict[str]) -> aioweb.StreamResponse:
        for name in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
                     "Sec-WebSocket-Protocol"):
            headers.pop(name, None)
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "")
                     .split(",") if p.strip()]
        async with session.ws_connect(url, headers=headers, protocols=protocols,
                                           autoping=False, max_msg_size=0) as upstream:
            client = aioweb.WebSocketResponse(protocols=protocols, autoping=False,
                                              max_msg_size=0)
            await client.prepare(request)
            request[STARTED] = client
            await _relay(client, upstream)
            return client

    def _too_large(self) -> aioweb.Response:
        return _text(413, messages.too_large(self.max_body))


async def _relay(client: aioweb.WebSocketResponse,
                 upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Pass messages both ways until either side closes; then close the other."""
    async def pump(source: Any, sink: Any) -> None:
        async for message in source:
            if message.type == aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.PING:
                await sink.ping(message.data)
            elif message.type == aiohttp.WSMsgType.PONG:
                await sink.pong(message.data)
            else:
                break
        await sink.close(code=source.close_code or aiohttp.WSCloseCode.OK)

    tasks = [asyncio.ensure_future(pump(client, upstream)),
             asyncio.ensure_future(pump(upstream, client))]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for task in done:
        task.exception()  # a side that broke: nothing more to relay


def _passed_on(headers: Any) -> CIMultiDict[str]:
    """A response's headers but the hop-by-hop ones (aiohttp sets the length)."""
    return CIMultiDict((name, value) for name, value in headers.items()
                       if name.lower() not in HOP_HEADERS)


def _release_late_lease(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().release()


def _broken(request: aioweb.Request) -> bool:
    return bool(request.get(BROKEN))


def _token_of(request: aioweb.Request) -> tuple[str | None, str | None]:
    """(key, secret) from coldsnap's headers, or Modal's (a ported client sends those)."""
    headers = request.headers
    return (headers.get(web.KEY_HEADER) or headers.get(web.MODAL_KEY_HEADER),
            headers.get(web.SECRET_HEADER) or headers.get(web.MODAL_SECRET_HEADER))


def _unless_started(request: aioweb.Request) -> aioweb.StreamResponse | None:
    """None while no response was sent; else (too late for an error status) drop the
    connection so the client sees the response was cut short, and hand it back."""
    response: aioweb.StreamResponse | None = request.get(STARTED)
    if response is not None and request.transport is not None:
        request.transport.close()
    return response


def _forwarded(request: aioweb.Request, where: Route) -> CIMultiDict[str]:
    headers = CIMultiDict((name, value) for name, value in request.headers.items()
                          if name.lower() not in HOP_HEADERS)
    headers["Host"] = request.host
    # The lean path in front of these handlers says who the client is.
    peer = headers.pop(PEER_HEADER, None) or request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    headers.popall("X-Forwarded-Prefix", None)  # ours alone: it moves the app's root
    if where.prefix:
        headers["X-Forwarded-Prefix"] = where.prefix
    if _is_websocket(request):
        headers.pop("Sec-WebSocket-Accept", None)
    return headers


def _is_websocket(request: aioweb.Request) -> bool:
    return (request.headers.get("Upgrade", "").lower() == "websocket"
            and "upgrade" in request.headers.get("Connection", "").lower())


def _text(status: int, body: str) -> aioweb.Response:
    return aioweb.Response(status=status, text=body)
