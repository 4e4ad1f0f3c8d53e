"""The dashboard's routes on the gateway, under ``/dashboard`` (docs/dashboard.md).

Every page is a server-side template; its live part is a fragment htmx fetches
again every few seconds (a request with ``HX-Request`` gets the fragment alone).
Reads run on a thread of their own: the gateway's loop keeps proxying meanwhile.
A request whose host names a web endpoint (``<app>--<label>.localhost``) is that
endpoint's, ``/dashboard`` included: it goes to the proxy.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import jinja2
from aiohttp import web as aioweb

from coldsnap.server.dashboard import assets, views
from coldsnap.server.dashboard.auth import COOKIE, SESSION_TTL_S, DashboardAuth
from coldsnap.server.errors import ApiError
from coldsnap.server.gateway.routes import route
from coldsnap.server.platform import Platform

PREFIX = "/dashboard"
Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]
# page (the path after /dashboard/) -> (title, the template of its live part)
PAGES: dict[str, tuple[str, str]] = {
    "": ("Apps", "_apps.html"),
    "functions": ("Functions", "_functions.html"),
    "boots": ("Boots", "_boots.html"),
    "snapshots": ("Snapshots", "_snapshots.html"),
}


class Dashboard:
    """``add_routes(app, fallback)`` puts the dashboard on a gateway's aiohttp app."""

    def __init__(self, platform: Platform, auth: DashboardAuth) -> None:
        self.platform = platform
        self.auth = auth
        self.rates = views.CallRates()
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(assets.HERE / "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined)
        self.templates.filters.update(ms=_ms, when=_when, size=_size, short=_short)

    def add_routes(self, app: aioweb.Application, fallback: Handler) -> None:
        """The dashboard's routes, ahead of the gateway's catch-all ``fallback``."""
        def own(handler: Handler) -> Handler:
            async def routed(request: aioweb.Request) -> aioweb.StreamResponse:
                if route(request.host, "/") is not None:  # an endpoint's host name
                    return await fallback(request)
                return await handler(request)
            return routed

        add = app.router.add_route
        add("GET", PREFIX, own(self.home))
        add("GET", f"{PREFIX}/login", own(self.login_page))
        add("POST", f"{PREFIX}/login", own(self.login_with_token))
        add("GET", f"{PREFIX}/login/{{code}}", own(self.login_with_code))
        add("POST", f"{PREFIX}/logout", own(self.logout))
        add("GET", f"{PREFIX}/static/{{name}}", own(self.static))
        add("GET", f"{PREFIX}/apps/{{app}}", own(self.signed_in(self.app_page)))
        for name in PAGES:
            add("GET", f"{PREFIX}/{name}",
                own(self.signed_in(functools.partial(self.page, name))))

    # signing in

    def signed_in(self, handler: Handler) -> Handler:
        """``handler`` for a signed-in browser; else the login page (htmx's polls get
        401 and are sent there)."""
        async def checked(request: aioweb.Request) -> aioweb.StreamResponse:
            if self.auth.signed_in(request.cookies.get(COOKIE)):
                return await handler(request)
            if request.headers.get("HX-Request"):
                return aioweb.Response(status=401, text="sign in again",
                                       headers={"HX-Redirect": f"{PREFIX}/login"})
            raise aioweb.HTTPFound(f"{PREFIX}/login")
        return checked

    async def home(self, request: aioweb.Request) -> aioweb.StreamResponse:
        raise aioweb.HTTPFound(f"{PREFIX}/")

    async def login_page(self, request: aioweb.Request) -> aioweb.StreamResponse:
        return self._render("login.html", {"title": "sign in", "error": None})

    async def login_with_token(self, request: aioweb.Request) -> aioweb.StreamResponse:
        form = await request.post()
        token = form.get("token")
        session = self.auth.session_for_token(token) if isinstance(token, str) else None
        if session is None:
            return self._render("login.html", {"title": "sign in", "error": (
                "That is not this server's token. It is in the file `token` of the server's "
                "state directory (COLDSNAP_STATE_DIR); or run `coldsnap dashboard` for a "
                "one-time login URL.")}, status=401)
        return _signed_in(session)

    async def login_with_code(self, request: aioweb.Request) -> aioweb.StreamResponse:
        session = self.auth.session_for_code(request.match_info["code"])
        if session is None:
            return self._render("login.html", {"title": "sign in", "error": (
                "This login URL was used already or is older than five minutes: run "
                "`coldsnap dashboard` for a new one, or sign in with the server token.")},
                status=401)
        return _signed_in(session)

    async def logout(self, request: aioweb.Request) -> aioweb.StreamResponse:
        self.auth.sessions.drop(request.cookies.get(COOKIE))
        response = aioweb.HTTPSeeOther(f"{PREFIX}/login")
        response.del_cookie(COOKIE, path=PREFIX)
        raise response

    # pages

    async def page(self, name: str, request: aioweb.Request) -> aioweb.StreamResponse:
        title, fragment = PAGES[name]
        return await self._show(request, title, fragment, functools.partial(self._data, name))

    async def app_page(self, request: aioweb.Request) -> aioweb.StreamResponse:
        app = request.match_info["app"]
        return await self._show(request, f"App {app}", "_app.html",
                                functools.partial(self._app_data, app))

    def _data(self, name: str) -> dict[str, Any]:
        platform = self.platform
        if name == "functions":
            return {"functions": views.functions(platform, self.rates)}
        if name == "boots":
            rows = views.boots(platform)
            return {"boots": rows, "points": views.boot_points(rows)}
        if name == "snapshots":
            rows, why_none = views.snapshots(platform)
            return {"snapshots": rows, "why_none": why_none}
        return {"apps": views.apps(platform)}

    def _app_data(self, app: str) -> dict[str, Any]:
        platform = self.platform
        return {"app": app, "stats": platform.reports.stats(app),
                "versions": platform.db.versions_of(app),
                "logs": views.log_tail(platform, app)}

    async def _show(self, request: aioweb.Request, title: str, fragment: str,
                    data: Callable[[], dict[str, Any]]) -> aioweb.StreamResponse:
        loop = asyncio.get_running_loop()
        try:
            context = await loop.run_in_executor(None, data)
        except ApiError as exc:  # an unknown app, say
            return self._render("page.html", {"title": title, "fragment": "_error.html",
                                              "error": exc.message}, status=404)
        if request.headers.get("HX-Request"):
            return self._render(fragment, context)
        return self._render("page.html", {**context, "title": title, "fragment": fragment,
                                          "path": request.path})

    async def static(self, request: aioweb.Request) -> aioweb.StreamResponse:
        path = assets.asset(request.match_info["name"])
        if path is None:
            raise aioweb.HTTPNotFound(text="no such dashboard file\n")
        if not path.is_file():
            raise aioweb.HTTPNotFound(text=f"{path.name} is not installed: "
                                      f"{assets.INSTALL_HINT}\n")
        return aioweb.FileResponse(path, headers={"Content-Type": assets.content_type(path),
                                                  "Cache-Control": "max-age=3600"})

    def _render(self, template: str, context: dict[str, Any],
                status: int = 200) -> aioweb.Response:
        body = self.templates.get_template(template).render(
            prefix=PREFIX, missing=assets.missing_libraries(), hint=assets.INSTALL_HINT,
            nav=PAGES, **context)
        return aioweb.Response(status=status, text=body, content_type="text/html",
                               headers={"Cache-Control": "no-store",
                                        "X-Frame-Options": "DENY"})


def _signed_in(session: str) -> NoReturn:
    response = aioweb.HTTPSeeOther(f"{PREFIX}/")
    response.set_cookie(COOKIE, session, path=PREFIX, httponly=True, samesite="Strict",
                        max_age=int(SESSION_TTL_S))
    raise response


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _when(epoch: float | None) -> str:
    return "-" if not epoch else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _size(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _short(text: str | None, length: int = 12) -> str:
    return "-" if not text else text[:length]
