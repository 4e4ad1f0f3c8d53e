"""The socket API's ``dashboard_login`` op: a one-time login URL for `coldsnap dashboard`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coldsnap.server.errors import ApiError, Reply
from coldsnap.wire.errors import UNAVAILABLE

if TYPE_CHECKING:
    from coldsnap.server.api import Api, Request


def dashboard_login(api: Api, req: Request) -> Reply:
    base = api.platform.deploys.web_base
    if api.dashboard is None or not base:
        raise ApiError(UNAVAILABLE, "the dashboard is served by the server's HTTP gateway, "
                       "which is off (COLDSNAP_HTTP=off): start the server with COLDSNAP_HTTP "
                       "set to HOST:PORT (default 127.0.0.1:8000)")
    code = api.dashboard.login_code()
    return {"ok": True, "url": f"{base}/dashboard/login/{code}", "base": base}, None
