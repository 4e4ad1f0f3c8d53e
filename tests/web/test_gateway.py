"""The HTTP gateway end to end: a real server, real CRIU, real HTTP and WebSockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import closing

import aiohttp
import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server, require_criu, stats, wait_for
from tests.web.http import Gateway

APP = "webapp"


@pytest.fixture(scope="module")
def web_server() -> Iterator[ServerHandle]:
    require_criu()
    for handle in module_server("criu"):
        handle.cli("deploy", str(APPS / "web_endpoints.py"))
        yield handle


@pytest.fixture(scope="module")
def gateway(web_server: ServerHandle) -> Gateway:
    return Gateway(web_server, APP)


def _boots(server: ServerHandle, tag: str) -> list[str]:
    return [boot["kind"] for boot in stats(server, APP)["boots"] if boot["tag"] == tag]


def _drain(server: ServerHandle) -> None:
    server.cli("apps", "drain", APP)


def test_a_cold_request_to_a_fastapi_endpoint_boots_from_its_snapshot(
    web_server: ServerHandle, gateway: Gateway,
) -> None:
    status, body = gateway.request("echo", "POST", body={"x": 1})
    assert status == 200, body
    assert json.loads(body)["got"] == {"x": 1}
    wait_for(lambda: "snapshot-created" in _boots(web_server, "echo"), 60, "the snapshot")
    _drain(web_server)  # scaled to zero: the next request cold-boots
    status, body = gateway.request("echo", "POST", body={"x": 2})
    assert status == 200, body
    assert json.loads(body)["got"] == {"x": 2}
    assert _boots(web_server, "echo")[0] == "restored"


def test_the_path_form_reaches_the_same_endpoint(gateway: Gateway) -> None:
    with closing(gateway.connection()) as conn:
        conn.request("POST", f"/web/{APP}--echo/", body=b'{"y": 3}',
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["got"] == {"y": 3}


def test_the_path_form_mounts_the_app_at_its_prefix(gateway: Gateway) -> None:
    """FastAPI's /docs page links its openapi.json under the prefix; a WSGI app sees
    the prefix as SCRIPT_NAME, not in PATH_INFO."""
    with closing(gateway.connection()) as conn:
        conn.request("GET", f"/web/{APP}--streamer/docs")
        response = conn.getresponse()
        assert response.status == 200
        assert f"/web/{APP}--streamer/openapi.json".encode() in response.read()
    with closing(gateway.connection()) as conn:
        conn.request("GET", f"/web/{APP}--classic/some/path")
        assert conn.getresponse().read() == b"wsgi GET /some/path"


def test_a_streamed_response_arrives_chunk_by_chunk(gateway: Gateway) -> None:
    with closing(gateway.connection()) as conn:
        conn.request("GET", "/stream?n=3&delay=1.5",
                     headers={"Host": gateway.host_of("streamer")})
        response = conn.getresponse()
        assert response.status == 200
        first = response.readline()
        first_at = time.monotonic()
        rest = response.read()
        done_at = time.monotonic()
    assert first.startswith(b"data: 0")
    assert b"data: 2" in rest
    # The events are 1.5 s apart: the first came long before the last was produced.
    assert done_at - first_at > 2.0


def test_a_request_body_streams_through(gateway: Gateway) -> None:
    size = 8 * 1024 * 1024

    def chunks() -> Iterator[bytes]:
        for _ in range(size // 65536):
            yield b"x" * 65536

    with closing(gateway.connection()) as conn:
        conn.request("POST", "/count", body=chunks(), encode_chunked=True,
                     headers={"Host": gateway.host_of("streamer"),
                              "Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read()) == {"bytes": size}


def test_a_websocket_echoes_through_the_gateway(gateway: Gateway) -> None:
    async def talk() -> list[str]:
        async with aiohttp.ClientSession() as session:
            url = f"http://{gateway.host}:{gateway.port}/ws"
            async with session.ws_connect(url, headers={"Host": gateway.host_of("streamer")}
                                          ) as ws:
                answers = []
                for text in ("one", "two"):
                    await ws.send_str(text)
                    answers.append((await ws.receive(timeout=60)).data)
                return answers

    assert asyncio.run(talk()) == ["echo: one", "echo: two"]


def test_a_websocket_reaches_a_web_server_of_its_own(gateway: Gateway) -> None:
    async def talk() -> str:
        async with aiohttp.ClientSession() as session:
            url = f"http://{gateway.host}:{gateway.port}/ws"
            async with session.ws_connect(url, headers={"Host": gateway.host_of("own-uvicorn")}
                                          ) as ws:
                await ws.send_str("ping")
                return str((await ws.receive(timeout=60)).data)

    assert asyncio.run(talk()) == "own: ping"


def test_what_a_request_prints_is_in_the_apps_log(web_server: ServerHandle,
                                                 gateway: Gateway) -> None:
    assert gateway.request("own-uvicorn") == (200, b'"hello from my own server"')
    wait_for(lambda: "own_uvicorn served a request" in web_server.cli("logs", APP).stdout,
             30, "the request's line in the app's log")


def test_calling_a_web_endpoint_with_remote_points_to_its_url(web_server: ServerHandle) -> None:
    result = web_server.python(
        "import coldsnap\n"
        f"coldsnap.Function.from_name({APP!r}, 'echo').remote({{'x': 1}})\n", check=False)
    assert result.returncode != 0
    assert "is a web endpoint: it is invoked by HTTP requests to its URL" in result.stderr


def test_a_wsgi_app_is_served(gateway: Gateway) -> None:
    status, body = gateway.request("classic", "GET", "/some/path")
    assert (status, body) == (200, b"wsgi GET /some/path")


def test_a_server_started_before_the_snapshot_serves_from_the_restored_copy(
    web_server: ServerHandle, gateway: Gateway,
) -> None:
    status, first = gateway.request("server-serve")
    assert status == 200 and first.startswith(b"listening since "), first
    wait_for(lambda: "snapshot-created" in _boots(web_server, "Server"), 60, "the snapshot")
    _drain(web_server)
    status, again = gateway.request("server-serve")
    assert status == 200
    assert _boots(web_server, "Server")[0] == "restored"
    # The same listener, opened in enter(snap=True) before the snapshot.
    assert again == first


def test_a_web_server_subprocess_is_proxied(gateway: Gateway) -> None:
    status, body = gateway.request("subprocess-server", "GET", "/web_endpoints.py")
    assert status == 200
    assert b"def subprocess_server" in body


def test_an_unknown_endpoint_is_404_naming_the_app_and_label(gateway: Gateway) -> None:
    status, body = gateway.request("nope")
    assert status == 404
    assert b"'webapp'" in body and b"'nope'" in body and b"echo" in body
    with closing(gateway.connection()) as conn:
        conn.request("GET", "/", headers={"Host": f"127.0.0.1:{gateway.port}"})
        response = conn.getresponse()
        assert response.status == 404 and b"names no web endpoint" in response.read()


def test_a_request_past_the_timeout_is_504_and_its_container_stopped(
    web_server: ServerHandle, gateway: Gateway,
) -> None:
    _drain(web_server)  # the timeout counts from the start of the request, not the boot:
    t0 = time.monotonic()
    status, body = gateway.request("slow", "GET", "/?seconds=1.5")
    took = time.monotonic() - t0
    assert (status, body) == (200, b'"done"'), (took, body)
    boots = len(_boots(web_server, "slow"))
    status, body = gateway.request("slow", "GET", "/?seconds=6")
    assert status == 504, body
    assert b"webapp--slow ran longer than its timeout of 2 s" in body
    wait_for(lambda: "a web request timed out after 2 s; stopping"
             in web_server.cli("logs", APP, "-n", "100000").stdout, 30, "the stop's log line")
    assert gateway.request("slow", "GET", "/?seconds=0") == (200, b'"done"')
    assert len(_boots(web_server, "slow")) == boots + 1  # its container was stopped


def test_a_container_crashing_mid_request_is_502(web_server: ServerHandle,
                                                 gateway: Gateway) -> None:
    before = web_server.cli("logs", APP, "-n", "100000").stdout.count("crashing on purpose")
    status, body = gateway.request("slow", "GET", "/?crash=true")
    assert status == 502, body
    assert b"died" in body or b"broke the connection" in body
    # Run once: a request that took its container down is not sent again.
    logs = web_server.cli("logs", APP, "-n", "100000").stdout
    assert logs.count("crashing on purpose") == before + 1, logs[-3000:]
    status, body = gateway.request("slow", "GET", "/?seconds=0")
    assert (status, body) == (200, b'"done"')  # a new container serves the next one


def test_proxy_auth_needs_a_token(web_server: ServerHandle, gateway: Gateway) -> None:
    status, body = gateway.request("secret-hello")
    assert status == 401 and b"Coldsnap-Key" in body
    token = json.loads(web_server.cli("token", "create", "--json").stdout)
    headers = {"Coldsnap-Key": token["key"], "Coldsnap-Secret": token["secret"]}
    assert gateway.request("secret-hello", headers=headers) == (200, b'"hello world"')
    modal_headers = {"Modal-Key": token["key"], "Modal-Secret": token["secret"]}
    assert gateway.request("secret-hello", headers=modal_headers) == (200, b'"hello world"')
    wrong = {**headers, "Coldsnap-Secret": "ws-wrong"}
    assert gateway.request("secret-hello", headers=wrong)[0] == 401
    assert token["secret"] not in web_server.cli("token", "ls").stdout
    web_server.cli("token", "rm", token["key"])
    assert gateway.request("secret-hello", headers=headers)[0] == 401


def test_deploy_prints_the_urls_and_get_web_url_returns_one(web_server: ServerHandle,
                                                           gateway: Gateway) -> None:
    out = web_server.cli("deploy", str(APPS / "web_endpoints.py")).stdout
    assert f"echo: http://{APP}--echo.localhost:{gateway.port}" in out
    assert f"Server.serve: http://{APP}--server-serve.localhost:{gateway.port}" in out
    url = web_server.python(
        "import coldsnap, urllib.request, json\n"
        f"url = coldsnap.Function.from_name({APP!r}, 'echo').get_web_url()\n"
        "request = urllib.request.Request(url + '/', data=b'{\"z\": 1}', "
        "headers={'Content-Type': 'application/json'})\n"
        "print(url, json.load(urllib.request.urlopen(request))['got'])\n").stdout
    assert url.strip().endswith("{'z': 1}")


def test_containers_cannot_reach_the_gateway_or_make_tokens(web_server: ServerHandle,
                                                            gateway: Gateway) -> None:
    out = web_server.python(
        "import coldsnap\n"
        f"print(coldsnap.Function.from_name({APP!r}, 'probe_gateway').remote({gateway.port}))")
    results = eval(out.stdout)  # a dict's repr
    host_side = next(key for key in results if key not in ("127.0.0.1", "token_create"))
    assert results["127.0.0.1"] == "ConnectionRefusedError"  # the container's own loopback
    assert results[host_side] == "TimeoutError", results  # dropped by the host
    assert "can't be sent from inside a container" in results["token_create"]


def test_a_web_endpoint_calls_other_functions(gateway: Gateway) -> None:
    status, body = gateway.request("calls-others", "GET", "/?x=4", timeout=60)
    assert status == 200, body
    assert json.loads(body) == {"remote": 16, "map": [1, 4]}


def test_apps_stats_counts_web_requests(web_server: ServerHandle, gateway: Gateway) -> None:
    def served() -> int:
        return sum(fn.get("http_requests", 0) for fn in stats(web_server, APP)["functions"]
                   if fn["tag"] == "classic")

    before = served()
    assert gateway.request("classic", path="/one")[0] == 200
    assert gateway.request("classic", path="/two")[0] == 200
    wait_for(lambda: served() == before + 2, 10, "two requests counted")
    table = web_server.cli("apps", "stats", APP).stdout
    assert "WEB" in table.splitlines()[1], table
