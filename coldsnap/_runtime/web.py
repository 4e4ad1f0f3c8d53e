"""Step 6b of the lifecycle: serve the container's web endpoints over HTTP.

After the ``enter`` hooks, each web endpoint of the target gets a server the
gateway can reach (docs/web.md): ``fastapi_endpoint``, ``asgi_app`` and
``wsgi_app`` are served by uvicorn on a port of their own, picked by the kernel;
a ``web_server`` function starts the user's server itself, and we wait until
its port accepts connections. The ports go back to the server in ``ready``.

uvicorn, h11, wsproto and a2wsgi ride in the runtime layer, so an image needs
none of them (an image's own, e.g. with httptools, wins: see runtime_layer.py).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from coldsnap._runtime import inputs
from coldsnap._runtime.inputs import WebInputs
from coldsnap._runtime.target import Target
from coldsnap.handles import Function
from coldsnap.user_code import run_maybe_async
from coldsnap.wire import web
from coldsnap.wire.web import WebEndpoint

# How long uvicorn may take to run an app's lifespan startup.
STARTUP_TIMEOUT_S = 60.0


class WebStartFailed(Exception):
    """An endpoint could not be served; the message says why and what to do."""


def endpoints(target: Target) -> list[tuple[WebEndpoint, Callable[..., Any]]]:
    """The target's web endpoints, each with what serves it (a function, or a method
    bound to the container's instance)."""
    handle = target.handle
    if isinstance(handle, Function):
        assert handle.raw_f is not None
        return [(endpoint, handle.raw_f) for endpoint in handle.web]
    return [(endpoint, getattr(target.instance, endpoint.name))
            for endpoint in handle.web_endpoints()]


# fastapi_endpoint apps built before the snapshot (``prepare``), by endpoint name.
_PREPARED: dict[str, Any] = {}


def prepare(target: Target) -> None:
    """Before the snapshot: import the web stack (uvicorn's lazily loaded parts too)
    and build each fastapi_endpoint's app, so that a restored copy only starts
    listening. Importing FastAPI and building its app after a restore took ~350 ms of
    the embedder's restored boot. (An asgi_app/wsgi_app function runs after the
    enter hooks, as on Modal: its app is made on every cold boot.)"""
    found = endpoints(target)
    if not found:
        return
    import uvicorn

    uvicorn.Config(_no_app, lifespan="off", log_level="warning").load()
    for endpoint, fn in found:
        if endpoint.kind == web.FASTAPI:
            _PREPARED[endpoint.name] = asgi_app_for(endpoint, fn)
        elif endpoint.kind == web.WSGI:
            import a2wsgi  # noqa: F401


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    """The app uvicorn's config is loaded with in ``prepare``; never served."""


def start(target: Target, host: str) -> dict[str, int]:
    """Serve every web endpoint of ``target``; endpoint name -> the port it is on."""
    ports: dict[str, int] = {}
    for endpoint, fn in endpoints(target):
        if endpoint.kind == web.WEB_SERVER:
            run_maybe_async(fn())  # starts the user's server, or finds it running
            assert endpoint.port is not None
            wait_for_port(endpoint.port, endpoint.startup_timeout, endpoint.name)
            ports[endpoint.name] = endpoint.port
        else:
            prepared = _PREPARED.pop(endpoint.name, None)
            app = MountedAt(WebInputs(prepared if prepared is not None
                                      else asgi_app_for(endpoint, fn), inputs.tell_server))
            ports[endpoint.name] = serve_asgi(app, host, endpoint.name)
    return ports


class MountedAt:
    """ASGI middleware: a request that came by the gateway's path form
    (``/web/<app>--<label>/...``, named in ``X-Forwarded-Prefix``) is seen mounted
    there (``root_path``), so the app's own links (FastAPI's ``/docs`` page, Flask's
    ``url_for``) keep the prefix."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            prefix = dict(scope.get("headers") or ()).get(b"x-forwarded-prefix", b"")
            if prefix.startswith(web.PATH_PREFIX.encode()):
                root = prefix.decode("latin-1")
                scope = {**scope, "root_path": root, "path": root + scope["path"],
                         "raw_path": prefix + (scope.get("raw_path") or b"")}
        await self.app(scope, receive, send)


def asgi_app_for(endpoint: WebEndpoint, fn: Callable[..., Any]) -> Any:
    """The ASGI app that serves ``endpoint``."""
    if endpoint.kind == web.FASTAPI:
        try:
            from fastapi import FastAPI
        except ImportError:
            raise WebStartFailed(
                f"@coldsnap.fastapi_endpoint() on {endpoint.name} needs FastAPI in the "
                "container's image: add .pip_install(\"fastapi[standard]\") to it") from None
        app = FastAPI(docs_url="/docs" if endpoint.docs else None, redoc_url=None,
                      openapi_url="/openapi.json" if endpoint.docs else None)
        app.add_api_route("/", fn, methods=[endpoint.method])
        return app
    app = run_maybe_async(fn())
    if endpoint.kind == web.WSGI:
        from a2wsgi import WSGIMiddleware

        return WSGIMiddleware(app)
    if not callable(app):
        raise WebStartFailed(
            f"@coldsnap.asgi_app() function {endpoint.name} returned {app!r}, not an ASGI "
            "app: return the app object (e.g. a FastAPI() instance)")
    return app


def serve_asgi(app: Any, host: str, name: str) -> int:
    """Run uvicorn for ``app`` in a thread, on a free port of ``host``; the port."""
    import uvicorn

    # proto=TCP: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # a response's two writes wait out the client's delayed ACK (40 ms a request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(4096)
    # Only the gateway reaches this port: trust the client address it forwards.
    config = uvicorn.Config(app, lifespan="auto", log_level="warning", access_log=False,
                            timeout_keep_alive=300, forwarded_allow_ips="*",
                            proxy_headers=True)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name=f"coldsnap-web-{name}")
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise WebStartFailed(
                f"the web server of {name} stopped while starting (its lifespan startup "
                "failed? see the log above)")
        if time.monotonic() > deadline:
            raise WebStartFailed(f"the web server of {name} did not start within "
                                 f"{STARTUP_TIMEOUT_S:g} s (a slow lifespan startup?)")
        time.sleep(0.002)
    return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, name: str) -> None:
    """Until something accepts connections on ``port`` (``web_server``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise WebStartFailed(
                    f"@coldsnap.web_server({port}) on {name}: nothing accepted connections "
                    f"on port {port} within startup_timeout={timeout_s:g} s ({exc}). Start "
                    f"your server listening on 0.0.0.0:{port} in the function or in an "
                    "@enter hook, or raise startup_timeout") from None
            time.sleep(0.01)
