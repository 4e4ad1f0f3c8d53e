"""Web endpoints on host agents through the agents' relays (COLDSNAP_FLEET_WEB_RELAY=always:
the simulated hosts share this machine, where `auto` would connect directly): a request,
a streamed response, a WebSocket; a wrong token is refused; what the relay costs."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import closing

import aiohttp
import pytest

from coldsnap.client import Client
from coldsnap.server.fleet.relay_route import Relay, RelayRefused, RelayRoute
from tests.conftest import APPS, ServerHandle
from tests.fleet.conftest import RayCluster, fleet_server
from tests.fleet.hosts import boots
from tests.web.http import Gateway

RELAY = {"COLDSNAP_FLEET_WEB_RELAY": "always"}


@pytest.fixture(scope="module")
def relayed(ray_cluster: RayCluster) -> Iterator[ServerHandle]:
    """One relayed server for the module's tests (server_factory's are one test's)."""
    started: list[ServerHandle] = []

    class Kept(ServerHandle):
        def __init__(self, engine: str = "none", env: dict[str, str] | None = None) -> None:
            super().__init__(engine, env)
            started.append(self)

    try:
        server = fleet_server(Kept, ray_cluster, RELAY)
        server.cli("deploy", str(APPS / "web_endpoints.py"))
        yield server
    finally:
        for handle in started:
            handle.cleanup()


def _relays(server: ServerHandle) -> dict[str, str]:
    client = Client(server.settings)
    try:
        return {h["host"]: h["web_relay"] for h in client.ping()["hosts"]}
    finally:
        client.close()


def test_every_host_is_reached_through_its_relay(relayed: ServerHandle) -> None:
    relays = _relays(relayed)
    assert relays and all(relays.values()), relays


def test_a_request_through_the_relay_is_answered(relayed: ServerHandle) -> None:
    status, body = Gateway(relayed, "webapp").request("echo", "POST", body={"x": 1})
    assert status == 200, body
    assert json.loads(body)["got"] == {"x": 1}
    assert boots(relayed, "webapp"), relayed.cli("logs", "webapp").stdout  # on a named host


def test_a_streamed_response_through_the_relay_arrives_chunk_by_chunk(
        relayed: ServerHandle) -> None:
    gateway = Gateway(relayed, "webapp")
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
    assert done_at - first_at > 2.0  # the first event came long before the last


def test_a_websocket_through_the_relay_echoes(relayed: ServerHandle) -> None:
    gateway = Gateway(relayed, "webapp")

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

    try:
        answers = asyncio.run(talk())
    except aiohttp.WSServerHandshakeError as exc:
        raise AssertionError(f"{exc}; the server's log:\n{relayed.log()[-4000:]}") from None
    assert answers == ["echo: one", "echo: two"]


def test_a_wrong_token_is_refused(relayed: ServerHandle) -> None:
    status, _ = Gateway(relayed, "webapp").request("echo", "POST", body={"x": 2})
    assert status == 200  # a container is up: only the token is wrong below
    host, _, port = next(iter(_relays(relayed).values())).rpartition(":")
    route = RelayRoute(Relay((host, int(port)), "not-the-token"), "cs-anything", 8000)
    with pytest.raises(RelayRefused, match="wrong token"):
        asyncio.run(route.open())


def test_apps_stats_says_on_which_host_each_container_booted(relayed: ServerHandle) -> None:
    status, _ = Gateway(relayed, "webapp").request("echo", "POST", body={"x": 3})
    assert status == 200
    stats = json.loads(relayed.cli("apps", "stats", "webapp", "--json").stdout)
    booted = {b["container_id"]: b["host"] for b in stats["boots"] if b["ok"]}
    lines = boots(relayed, "webapp")  # (container, kind, host) from the boot lines
    assert lines and all(booted[cid] == host for cid, _, host in lines), (booted, lines)
    assert set(booted.values()) <= set(_relays(relayed)), booted
    assert f"on host {lines[0][2]}" in relayed.cli("apps", "stats", "webapp").stdout


def _p50_ms(gateway: Gateway, label: str, n: int) -> float:
    """The median time of ``n`` GETs on one kept-alive connection, in ms."""
    times = []
    with closing(gateway.connection()) as conn:
        for _ in range(n):
            t0 = time.perf_counter()
            conn.request("GET", "/p", headers={"Host": gateway.host_of(label)})
            response = conn.getresponse()
            assert response.status == 200 and response.read() == b"wsgi GET /p"
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def test_what_the_relay_costs(relayed: ServerHandle, server_factory: type[ServerHandle],
                              ray_cluster: RayCluster) -> None:
    """Not a time limit: the medians go to the test's log (pytest -s shows them)."""
    direct = fleet_server(server_factory, ray_cluster)  # auto: this machine, so direct
    direct.cli("deploy", str(APPS / "web_endpoints.py"))
    assert not any(_relays(direct).values())
    medians = {}
    for name, server in (("relay", relayed), ("direct", direct)):
        gateway = Gateway(server, "webapp")
        _p50_ms(gateway, "classic", 5)  # a container up, connections warm
        medians[name] = _p50_ms(gateway, "classic", 200)
    print(f"\nweb request p50 through a fleet's gateway: relay {medians['relay']:.2f} ms, "
          f"direct {medians['direct']:.2f} ms, "
          f"relay costs {medians['relay'] - medians['direct']:+.2f} ms per request")
    assert medians["relay"] > 0 and medians["direct"] > 0
