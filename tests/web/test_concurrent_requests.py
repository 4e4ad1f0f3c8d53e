"""HTTP requests are inputs: N parallel requests to an endpoint under
``@coldsnap.concurrent(max_inputs=N)`` are served by one container at once (the gateway
takes its input slots with ``Pool.lease``), and past max_inputs more containers boot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, stats, write_app
from tests.web.http import Gateway

APP = "test-conc-web"
NAP_S = 3.0
SOURCE = """
import os
import time

import coldsnap

app = coldsnap.App("test-conc-web", image=coldsnap.Image.from_host())


def _nap(seconds: float) -> dict:
    started = time.time()
    time.sleep(seconds)
    return {"container": os.environ["COLDSNAP_CONTAINER_ID"], "start": started,
            "end": time.time()}


@app.function(enable_memory_snapshot=True)
@coldsnap.concurrent(max_inputs=4)
@coldsnap.fastapi_endpoint()
def nap(seconds: float = 0.0) -> dict:
    return _nap(seconds)


@app.function(enable_memory_snapshot=True)
@coldsnap.concurrent(max_inputs=2)
@coldsnap.fastapi_endpoint()
def nap_in_twos(seconds: float = 0.0) -> dict:
    return _nap(seconds)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    require_criu()
    for handle in module_server("criu"):
        handle.cli("deploy", str(write_app(tmp_path_factory.mktemp("apps"), "conc_web",
                                           SOURCE)))
        yield handle


@pytest.fixture(scope="module")
def gateway(server: ServerHandle) -> Gateway:
    return Gateway(server, APP)


def _parallel(gateway: Gateway, label: str, count: int) -> list[dict[str, Any]]:
    def one(_: int) -> dict[str, Any]:
        status, body = gateway.request(label, path=f"/?seconds={NAP_S}")
        assert status == 200, body
        return dict(json.loads(body))

    with ThreadPoolExecutor(count) as clients:
        return list(clients.map(one, range(count)))


def _overlapping(reports: list[dict[str, Any]]) -> bool:
    return max(r["start"] for r in reports) < min(r["end"] for r in reports)


def _function(server: ServerHandle, tag: str) -> dict[str, Any]:
    return next(f for f in stats(server, APP)["functions"] if f["tag"] == tag)


def test_n_parallel_requests_share_one_container_when_max_inputs_allows(
        server: ServerHandle, gateway: Gateway) -> None:
    reports = _parallel(gateway, "nap", 4)
    assert len({r["container"] for r in reports}) == 1, reports
    assert _overlapping(reports), reports
    fn = _function(server, "nap")
    assert (fn["boots_ok"], fn["http_requests"]) == (1, 4)


def test_past_max_inputs_requests_take_more_containers(server: ServerHandle,
                                                      gateway: Gateway) -> None:
    reports = _parallel(gateway, "nap-in-twos", 4)
    by_container: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        by_container.setdefault(report["container"], []).append(report)
    assert sorted(len(v) for v in by_container.values()) == [2, 2], reports
    assert all(_overlapping(v) for v in by_container.values()), reports
    assert _function(server, "nap_in_twos")["boots_ok"] == 2
