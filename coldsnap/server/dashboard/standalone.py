"""The dashboard on an address of its own (``COLDSNAP_DASHBOARD``, loopback and a free
port by default), for a server whose HTTP gateway is off (``COLDSNAP_HTTP=off``).

The same aiohttp routes as on the gateway (pages.py), on an event loop of its own
thread; ``/`` leads to ``/dashboard/`` and any other path is 404. With the gateway on,
the dashboard is the gateway's and this server never starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading

from aiohttp import web as aioweb

from coldsnap.server.dashboard.pages import PREFIX, Dashboard

logger = logging.getLogger(__name__)


class DashboardBindError(Exception):
    """``COLDSNAP_DASHBOARD`` can't be listened on; the message says what to do."""


class DashboardServer:
    """``start()`` binds ``address`` and serves; ``base_url`` is where; ``stop()``."""

    def __init__(self, dashboard: Dashboard, address: tuple[str, int], setting: str) -> None:
        self.dashboard = dashboard
        self.address = address
        self.setting = setting  # as the user wrote it, for the bind error
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: aioweb.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        sock = self._bind()
        host, port = sock.getsockname()[:2]
        self.base_url = f"http://{host}:{port}"
        self._loop.run_until_complete(self._serve(sock))  # before the thread: errors here
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="dashboard")
        self._thread.start()

    async def _serve(self, sock: socket.socket) -> None:
        app = aioweb.Application()
        self.dashboard.add_routes(app, _not_found)
        app.router.add_route("GET", "/", _to_dashboard)
        app.router.add_route("*", "/{tail:.*}", _not_found)
        # handle_signals=False: the daemon's main thread owns SIGTERM/SIGINT.
        self._runner = aioweb.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await aioweb.SockSite(self._runner, sock, shutdown_timeout=2.0).start()

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._runner is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            except Exception:  # stopping anyway: the process is going away
                logger.exception("the dashboard did not stop cleanly")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._thread = None

    def _bind(self) -> socket.socket:
        try:
            sock = socket.create_server(self.address)
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise DashboardBindError(
                f"the dashboard can't listen on {self.setting} (COLDSNAP_DASHBOARD): {why}; "
                "stop what uses that port, or set COLDSNAP_DASHBOARD to another HOST:PORT "
                "(port 0 picks a free one; off: no dashboard)") from None
        sock.setblocking(False)
        return sock


async def _to_dashboard(request: aioweb.Request) -> aioweb.StreamResponse:
    raise aioweb.HTTPFound(f"{PREFIX}/")


async def _not_found(request: aioweb.Request) -> aioweb.StreamResponse:
    return aioweb.Response(status=404, text=f"not a dashboard page: the dashboard is at "
                           f"{PREFIX}/ (the HTTP gateway is off: no web endpoints here)\n")
