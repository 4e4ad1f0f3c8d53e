"""The gateway's life: bind ``COLDSNAP_HTTP`` at startup (a busy port is a clear
error), serve on an event loop of its own thread, stop with the server.

Clients talk to its lean path (front.py), which passes what it does not serve itself
to the aiohttp handlers (proxy.py) on a unix socket in the server's run directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web as aioweb

from coldsnap.server.gateway import metrics_page
from coldsnap.server.gateway.front import front_factory
from coldsnap.server.gateway.metrics_page import counted
from coldsnap.server.gateway.proxy import Proxy
from coldsnap.server.gateway.upstream import Upstreams
from coldsnap.server.metrics import ServerMetrics
from coldsnap.settings import Settings
from coldsnap.wire.web import WebEndpoint

logger = logging.getLogger(__name__)


class GatewayBindError(Exception):
    """The gateway's address can't be listened on; the message names the setting."""


class Gateway:
    """``start()`` binds and serves; ``base_url`` is where it listens; ``stop()``."""

    def __init__(self, settings: Settings,
                 resolve: Callable[[str, str], tuple[Any, WebEndpoint]],
                 authorized: Callable[[str | None, str | None], bool],
                 metrics: ServerMetrics | None = None, token: str = "",
                 dashboard: Any = None) -> None:
        self.settings = settings
        self.metrics = metrics or ServerMetrics()
        self.token = token  # /metrics answers only to it (metrics_page.py)
        self.dashboard = dashboard  # dashboard.Dashboard: its routes go ahead of the proxy's
        self.proxy = Proxy(resolve, authorized, settings.http_max_body_bytes,
                           settings.call_timeout_s, settings.boot_timeout_s)
        self.base_url = ""
        self.upstreams = Upstreams()
        self._internal = str(settings.run_path / "gateway.sock")
        self._front: asyncio.AbstractServer | None = None
        self._loop = _new_loop()
        self._thread: threading.Thread | None = None
        self._runner: aioweb.AppRunner | None = None

    def start(self) -> None:
        address = self.settings.http_address()
        assert address is not None
        sock = _bind(address, self.settings.http)
        host, port = sock.getsockname()[:2]
        self.base_url = f"http://{host}:{port}"
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve(sock))
            except BaseException as exc:  # reported to start(), which raises it
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="http-gateway")
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]

    async def _serve(self, sock: socket.socket) -> None:
        await self.proxy.start()
        app = aioweb.Application(client_max_size=self.settings.http_max_body_bytes)
        endpoints = counted(self.metrics, self.proxy.handle)
        if self.token:
            app.router.add_route("GET", metrics_page.PATH,
                                 metrics_page.metrics_handler(self.metrics, self.token, endpoints))
        if self.dashboard is not None:
            self.dashboard.add_routes(app, endpoints)
        app.router.add_route("*", "/{tail:.*}", endpoints)
        # handle_signals=False: the daemon's main thread owns SIGTERM/SIGINT.
        self._runner = aioweb.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await aioweb.SockSite(self._runner, _bind_unix(self._internal),
                              shutdown_timeout=2.0).start()
        self._front = await self._loop.create_server(
            front_factory(self.proxy, self.upstreams, self._internal,
                          self.metrics.http_response), sock=sock)

    def stop(self) -> None:
        if self._thread is None:
            return

        async def shutdown() -> None:
            if self._front is not None:
                self._front.close()
            self.upstreams.close()
            if self._runner is not None:
                await self._runner.cleanup()
            await self.proxy.close()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        except Exception:  # stopping anyway: the process is going away
            logger.exception("the HTTP gateway did not stop cleanly")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._thread = None


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop (libuv: a proxy spends much of its time in the loop), else
    asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _bind(address: tuple[str, int], setting: str) -> socket.socket:
    try:
        sock = socket.create_server(address, backlog=4096, reuse_port=False)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise GatewayBindError(
            f"the HTTP gateway can't listen on {setting} (COLDSNAP_HTTP): {why}; stop what "
            "uses that port, or set COLDSNAP_HTTP to another HOST:PORT (port 0 picks a free "
            "one; off: no gateway)") from None
    sock.setblocking(False)
    return sock


def _bind_unix(path: str) -> socket.socket:
    """The aiohttp handlers' socket (a stale one from a killed server goes first)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(1024)
    sock.setblocking(False)
    return sock
