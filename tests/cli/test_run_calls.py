"""`coldsnap run` with the call API: an `async def` entrypoint is awaited, and a run
that ends while containers still boot says the app was stopped, not that a boot failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, write_app

ASYNC_APP = """
import coldsnap

app = coldsnap.App("test-async-entry")


@app.function()
def square(x: int) -> int:
    return x * x


@app.local_entrypoint()
async def main(n: int = 4):
    print("async entrypoint ran:", await square.remote.aio(n))
"""

SLOW_BOOT_APP = """
import time

import coldsnap

app = coldsnap.App("test-run-ends-booting")


@app.cls()
class SlowBoot:
    @coldsnap.enter()
    def wait(self):
        time.sleep(30)

    @coldsnap.method()
    def work(self) -> int:
        return 1


@app.function()
def quick(x: int) -> int:
    return x


@app.local_entrypoint()
def main():
    SlowBoot().work.spawn()
    print(list(quick.map(range(8))))
"""


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    yield from module_server()


def test_an_async_entrypoint_is_awaited(srv: ServerHandle, tmp_path: Path) -> None:
    app_file = write_app(tmp_path, "async_entry", ASYNC_APP)
    result = srv.cli("run", str(app_file), "--n", "5")
    assert "async entrypoint ran: 25" in result.stdout, result.stdout + result.stderr


def test_a_run_ending_while_containers_boot_says_the_app_stopped(
        srv: ServerHandle, tmp_path: Path) -> None:
    app_file = write_app(tmp_path, "slow_boot", SLOW_BOOT_APP)
    result = srv.cli("run", str(app_file), timeout=180)
    assert "[0, 1, 2, 3, 4, 5, 6, 7]" in result.stdout
    assert "boot failed" not in result.stderr, result.stderr
    assert "shutting down" not in result.stderr, result.stderr
    assert "containers still booting were stopped: app 'test-run-ends-booting-run-" in (
        result.stderr), result.stderr
