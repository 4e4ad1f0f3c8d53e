"""Who gets in, over plain HTTP against a real server (the ``none`` engine): every page
wants a session; `coldsnap dashboard` prints a URL that signs in once; the login page
takes the server token; an endpoint's host name never reaches the dashboard."""

from __future__ import annotations

import http.client
import json
import urllib.parse

from tests.conftest import ServerHandle


def _get(base: str, path: str, headers: dict[str, str] | None = None, method: str = "GET",
         body: str | None = None) -> tuple[int, dict[str, str], str]:
    where = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read().decode())
    finally:
        conn.close()


def _login_url(server: ServerHandle) -> str:
    url: str = json.loads(server.cli("dashboard", "--json").stdout)["url"]
    return url


def test_pages_need_a_session(server: ServerHandle) -> None:
    base = server.http
    for path in ("/dashboard/", "/dashboard/boots", "/dashboard/snapshots",
                 "/dashboard/functions", "/dashboard/apps/x"):
        status, headers, _ = _get(base, path)
        assert (status, headers.get("location")) == (302, "/dashboard/login"), path
    status, headers, _ = _get(base, "/dashboard/boots", {"HX-Request": "true"})
    assert (status, headers.get("hx-redirect")) == (401, "/dashboard/login")
    status, _, body = _get(base, "/dashboard/boots", {"Cookie": "coldsnap_dashboard=forged"})
    assert status == 302


def test_the_one_time_url_signs_in_once(server: ServerHandle) -> None:
    url = _login_url(server)
    base = server.http
    assert url.startswith(base + "/dashboard/login/")
    path = urllib.parse.urlsplit(url).path
    status, headers, _ = _get(base, path)
    assert (status, headers["location"]) == (303, "/dashboard/")
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
    session = cookie.split(";", 1)[0]
    status, _, body = _get(base, "/dashboard/", {"Cookie": session})
    assert status == 200 and "No apps yet" in body
    status, _, body = _get(base, path)
    assert status == 401 and "used already or is older than five minutes" in body
    assert "coldsnap dashboard" in body


def test_the_login_page_takes_the_server_token(server: ServerHandle) -> None:
    base = server.http
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = _get(base, "/dashboard/login", form, "POST", "token=wrong")
    assert status == 401 and "That is not this server&#39;s token" in body
    token = server.settings.token_path.read_text().strip()
    status, headers, _ = _get(base, "/dashboard/login", form, "POST",
                              urllib.parse.urlencode({"token": token}))
    assert status == 303 and "HttpOnly" in headers["set-cookie"]


def test_the_libraries_are_served(server: ServerHandle) -> None:
    for name in ("htmx.min.js", "chart.umd.min.js", "dashboard.js"):
        status, headers, body = _get(server.http, f"/dashboard/static/{name}")
        assert status == 200, (name, body[:200])
        assert headers["content-type"].startswith("text/javascript")
    assert _get(server.http, "/dashboard/static/../token")[0] == 404


def test_an_endpoint_host_name_is_the_endpoints(server: ServerHandle) -> None:
    status, _, body = _get(server.http, "/dashboard/login",
                           {"Host": "some-app--web.localhost"})
    assert status == 404 and "coldsnap gateway" in body and "Server token" not in body


def test_the_command_prints_the_url_and_how_else_to_sign_in(server: ServerHandle) -> None:
    out = server.cli("dashboard").stdout
    assert f"dashboard: {server.http}/dashboard/login/" in out
    assert "valid for five minutes" in out and f"{server.http}/dashboard/login with" in out


def test_without_a_gateway_it_has_an_address_of_its_own(
    server_factory: type[ServerHandle]
) -> None:
    server = server_factory(env={"COLDSNAP_HTTP": "off"}).start()  # COLDSNAP_DASHBOARD: default
    url = _login_url(server)
    where = urllib.parse.urlsplit(url)
    assert where.hostname == "127.0.0.1" and where.port not in (None, 0)
    assert where.path.startswith("/dashboard/login/")
    base = f"http://{where.netloc}"
    status, headers, _ = _get(base, where.path)
    assert (status, headers["location"]) == (303, "/dashboard/")
    session = headers["set-cookie"].split(";", 1)[0]
    status, _, body = _get(base, "/dashboard/snapshots", {"Cookie": session})
    assert status == 200 and "Snapshots" in body
    assert _get(base, "/")[1]["location"] == "/dashboard/"
    status, _, body = _get(base, "/some-app/x")
    assert status == 404 and "not a dashboard page" in body
    assert f"dashboard on {base}/dashboard/ (the HTTP gateway is off)" in server.log()


def test_with_the_gateway_and_its_own_address_off_the_command_says_so(
    server_factory: type[ServerHandle]
) -> None:
    server = server_factory(env={"COLDSNAP_HTTP": "off", "COLDSNAP_DASHBOARD": "off"}).start()
    result = server.cli("dashboard", check=False)
    assert result.returncode == 1
    assert "the dashboard is off: the server's HTTP gateway is off (COLDSNAP_HTTP=off) and " \
        "so is the dashboard's own address (COLDSNAP_DASHBOARD=off)" in result.stderr
