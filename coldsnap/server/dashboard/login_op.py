"""The socket API's ``dashboard_login`` op: a one-time login URL for `coldsnap dashboard`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coldsnap.server.errors import ApiError, Reply
from coldsnap.wire.errors import UNAVAILABLE

if TYPE_CHECKING:
    from coldsnap.server.api import Api, Request


def dashboard_login(api: Api, req: Request) -> Reply:
    base = api.dashboard.base_url if api.dashboard is not None else ""
    if api.dashboard is None or not base:
        raise ApiError(UNAVAILABLE, "the dashboard is off: the server's HTTP gateway is off "
                       "(COLDSNAP_HTTP=off) and so is the dashboard's own address "
                       "(COLDSNAP_DASHBOARD=off); start the server with either set to "
                       "HOST:PORT (COLDSNAP_DASHBOARD=127.0.0.1:0 picks a free port)")
    code = api.dashboard.login_code()
    return {"ok": True, "url": f"{base}/dashboard/login/{code}", "base": base}, None
