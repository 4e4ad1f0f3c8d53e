"""The HTTP workloads' measurements: time to a response's first byte through the
gateway, and the gateway's added latency and throughput against the container's
own server, on the same warm container."""

from __future__ import annotations

import asyncio
import http.client
import json
import statistics
import time
from typing import Any

# Sequential requests per latency sample set; seconds of load per throughput run.
LATENCY_REQUESTS = 1000
THROUGHPUT_S = 5.0
CLIENTS = 32


class Target:
    """An endpoint: ``address`` (HOST:PORT) to connect to and the Host header to send."""

    def __init__(self, address: str, host: str, path: str = "/", body: bytes | None = None,
                 method: str = "GET") -> None:
        self.address = address
        self.host = host
        self.path = path
        self.body = body
        self.method = method

    def connection(self, timeout: float = 600.0) -> http.client.HTTPConnection:
        host, _, port = self.address.rpartition(":")
        return http.client.HTTPConnection(host, int(port), timeout=timeout)

    def send(self, conn: http.client.HTTPConnection) -> http.client.HTTPResponse:
        headers = {"Host": self.host}
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(self.method, self.path, body=self.body, headers=headers)
        return conn.getresponse()


def first_byte_s(target: Target) -> float:
    """Seconds from sending a request on a new connection to its response's first
    body byte; the rest is read (and must be a 200)."""
    conn = target.connection()
    try:
        t0 = time.perf_counter()
        response = target.send(conn)
        response.read(1)
        elapsed = time.perf_counter() - t0
        rest = response.read()
        if response.status != 200:
            raise RuntimeError(f"{target.host}: HTTP {response.status}: {rest[:500]!r}")
        return elapsed
    finally:
        conn.close()


def json_of(target: Target) -> Any:
    conn = target.connection()
    try:
        return json.loads(target.send(conn).read())
    finally:
        conn.close()


def latencies(target: Target, n: int = LATENCY_REQUESTS) -> list[float]:
    """``n`` requests one after another on one kept-alive connection."""
    conn = target.connection()
    samples = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            response = target.send(conn)
            response.read()
            samples.append(time.perf_counter() - t0)
    finally:
        conn.close()
    return samples


def throughput(target: Target, clients: int = CLIENTS, seconds: float = THROUGHPUT_S
               ) -> float:
    """Requests per second with ``clients`` concurrent kept-alive connections."""
    return asyncio.run(_load(target, clients, seconds))


async def _load(target: Target, clients: int, seconds: float) -> float:
    import aiohttp

    done = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with session.request(target.method, f"http://{target.address}{target.path}",
                                       headers={"Host": target.host}, data=target.body) as r:
                await r.read()
            done += 1

    start = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return done / (time.perf_counter() - start)


def gateway_overhead(gateway: Target, direct: Target) -> dict[str, Any]:
    """Latency through the gateway minus straight to the container, interleaved in
    rounds so both see the same machine; and throughput of each."""
    through, straight = [], []
    for _ in range(4):
        through += latencies(gateway, LATENCY_REQUESTS // 4)
        straight += latencies(direct, LATENCY_REQUESTS // 4)
    p50 = statistics.median(through) - statistics.median(straight)
    p99 = _p99(through) - _p99(straight)
    rps_direct = throughput(direct)
    rps_gateway = throughput(gateway)
    return {
        "gateway_overhead_p50_s": round(p50, 6), "gateway_overhead_p99_s": round(p99, 6),
        "latency_gateway_p50_s": round(statistics.median(through), 6),
        "latency_direct_p50_s": round(statistics.median(straight), 6),
        "rps_gateway": round(rps_gateway, 1), "rps_direct": round(rps_direct, 1),
        "throughput_ratio": round(rps_gateway / rps_direct, 3) if rps_direct else None,
        "clients": CLIENTS,
    }


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
