"""200 concurrent calls over 8 containers: no loss, no deadlock; plain containers on
the none engine, restored ones on the criu engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, stats, write_app

TRIVIAL = """
import os
import time

import coldsnap

app = coldsnap.App("test-load")


@app.function(max_containers=8, enable_memory_snapshot=True)
def echo(i: int) -> tuple[int, str]:
    # Long enough that one container alone would need 10 s: the others must help.
    time.sleep(0.05)
    # Not the pid: under the criu engine every container's process is pid 1.
    return i, os.environ["COLDSNAP_CONTAINER_ID"]
"""

CALLER = """
import collections
from concurrent.futures import ThreadPoolExecutor

import coldsnap

echo = coldsnap.Function.from_name("test-load", "echo")
with ThreadPoolExecutor(max_workers=200) as pool:
    results = list(pool.map(echo.remote, range(200)))
assert [i for i, _ in results] == list(range(200)), results
containers = collections.Counter(cid for _, cid in results)
print(len(results), len(containers))
"""


@pytest.fixture(params=["none", "criu"])
def server(request: pytest.FixtureRequest, server_factory: type[ServerHandle]) -> ServerHandle:
    if request.param == "criu":
        require_criu()
    return server_factory(request.param).start()


def test_200_concurrent_calls_over_8_containers(server: ServerHandle, tmp_path: Path) -> None:
    server.cli("deploy", str(write_app(tmp_path, "load", TRIVIAL)))
    out = server.python(CALLER, timeout=180).stdout.split()
    assert out[0] == "200"
    assert 2 <= int(out[1]) <= 8, out  # spread over several containers, never more than 8
    fn = stats(server, "test-load")["functions"][0]
    assert fn["calls_ok"] == 200
    assert fn["calls_failed"] == 0 and fn["queued"] == 0
    assert fn["boots_ok"] <= 8 and fn["boots_failed"] == 0
    assert len(fn["containers"]) <= 8
    kinds = {b["kind"] for b in stats(server, "test-load")["boots"]}
    assert ("restored" in kinds) == (server.engine == "criu"), kinds
