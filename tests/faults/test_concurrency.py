"""1,000 concurrent calls from 50 client threads on the criu engine: none lost, none
answered twice, every one with its own result."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, stats, write_app

APP = """
import os
import time

import coldsnap

app = coldsnap.App("test-thousand")


@app.function(max_containers=8, enable_memory_snapshot=True)
def echo(i: int) -> tuple[int, str]:
    time.sleep(0.01)
    return i, os.environ["COLDSNAP_CONTAINER_ID"]
"""

CALLER = """
from concurrent.futures import ThreadPoolExecutor

import coldsnap

echo = coldsnap.Function.from_name("test-thousand", "echo")


def client(thread: int) -> list[int]:
    return [echo.remote(thread * 20 + n)[0] for n in range(20)]


with ThreadPoolExecutor(max_workers=50) as pool:
    results = [i for batch in pool.map(client, range(50)) for i in batch]
print(len(results), sorted(results) == list(range(1000)))
"""


def test_1000_calls_from_50_threads_lose_nothing(server_factory: type[ServerHandle],
                                                 tmp_path: Path) -> None:
    require_criu()
    server = server_factory("criu").start()
    server.cli("deploy", str(write_app(tmp_path, "thousand", APP)))
    assert server.python(CALLER, timeout=300).stdout.split() == ["1000", "True"]
    [fn] = stats(server, "test-thousand")["functions"]
    assert (fn["calls_ok"], fn["calls_error"], fn["calls_failed"], fn["queued"]) == (
        1000, 0, 0, 0)
    kinds = {b["kind"] for b in stats(server, "test-thousand")["boots"]}
    assert fn["boots_ok"] >= 2 and "restored" in kinds, (fn["boots_ok"], kinds)
