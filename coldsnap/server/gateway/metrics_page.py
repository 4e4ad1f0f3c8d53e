"""``GET /metrics`` on the gateway's address: the server's Prometheus metrics, for a
scraper that sends the server token (``Authorization: Bearer TOKEN``, docs/metrics.md).

A host name that names a web endpoint (``<app>--<label>.localhost``) keeps its own
``/metrics``: that request goes to the endpoint, like any other.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web as aioweb

from coldsnap.server.gateway.routes import route
from coldsnap.server.metrics import CONTENT_TYPE_LATEST, ServerMetrics

PATH = "/metrics"
Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


def metrics_handler(metrics: ServerMetrics, token: str, endpoints: Handler) -> Handler:
    """The handler of ``PATH``; ``endpoints`` serves what is a web endpoint's."""

    async def handle(request: aioweb.Request) -> aioweb.StreamResponse:
        if route(request.host, request.raw_path) is not None:
            return await endpoints(request)
        if not _bearer_matches(request.headers.get("Authorization", ""), token):
            return aioweb.Response(
                status=401, headers={"WWW-Authenticate": 'Bearer realm="coldsnap"'},
                text="coldsnap gateway: /metrics needs the server token: send "
                "`Authorization: Bearer TOKEN` with TOKEN the contents of the file `token` "
                "in the server's state dir (COLDSNAP_STATE_DIR); Prometheus reads it with "
                "authorization: {credentials_file: ...} (docs/metrics.md)\n")
        # Reading the pools and the store blocks: not on the gateway's loop.
        body = await asyncio.get_running_loop().run_in_executor(None, metrics.exposition)
        return aioweb.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle


def counted(metrics: ServerMetrics, endpoints: Handler) -> Handler:
    """``endpoints``, with each response's status counted (``coldsnap_http_requests_total``)."""

    async def handle(request: aioweb.Request) -> aioweb.StreamResponse:
        response = await endpoints(request)
        metrics.http_response(response.status)
        return response

    return handle


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())
