"""Scheduling: reuse, cold boots, scale-down, min_containers (also after a drain), deaths,
retries, timeouts; on the none engine (plain boots) and on the criu engine, where every
container after the first of a function is restored from its snapshot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, stats, wait_for, write_app

SCHED_APP = """
import os
import time

import coldsnap

app = coldsnap.App("test-sched")


@app.function(enable_memory_snapshot=True)
def pid() -> str:  # the container's id: under the criu engine every pid is 1
    return os.environ["COLDSNAP_CONTAINER_ID"]


@app.function(enable_memory_snapshot=True)
def die(code: int) -> None:
    print("about to die", flush=True)
    os._exit(code)


COUNT = [0]


@app.function(max_containers=1, enable_memory_snapshot=True)
def count() -> int:  # one container counts for all: the host's files are out of reach
    COUNT[0] += 1
    return COUNT[0]


@app.function(retries=2, enable_memory_snapshot=True)
def flaky() -> str:
    if count.remote() == 1:  # the first attempt's container dies
        os._exit(3)
    return "recovered"


ATTEMPTS = []


@app.function(retries=2, enable_memory_snapshot=True)
def raises_twice() -> int:
    ATTEMPTS.append(1)  # one container serves every attempt
    if len(ATTEMPTS) < 3:
        raise ValueError(f"attempt {len(ATTEMPTS)} fails")
    return len(ATTEMPTS)


@app.function(retries=1, enable_memory_snapshot=True)
def always_raises() -> None:
    raise ValueError("no luck")


@app.function(timeout=1, enable_memory_snapshot=True)
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


@app.function(scaledown_window=1, enable_memory_snapshot=True)
def brief() -> str:
    return os.environ["COLDSNAP_CONTAINER_ID"]


@app.function(min_containers=1, enable_memory_snapshot=True)
def warm() -> str:
    return os.environ["COLDSNAP_CONTAINER_ID"]
"""


@pytest.fixture(scope="module", params=["none", "criu"])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ServerHandle]:
    if request.param == "criu":
        require_criu()
    for handle in module_server(request.param):
        app = write_app(tmp_path_factory.mktemp("apps"), "sched", SCHED_APP)
        handle.cli("deploy", str(app))
        yield handle


def _call(srv: ServerHandle, expr: str, check: bool = True) -> str:
    result = srv.python(
        "import coldsnap\n"
        "from coldsnap.wire.errors import ServerError\n"
        "F = lambda tag: coldsnap.Function.from_name('test-sched', tag)\n"
        "try:\n"
        f"    print(repr({expr}))\n"
        "except ServerError as exc:\n"
        "    print(exc.kind, '|', exc)\n", check=check)
    return result.stdout.strip()


def _function(srv: ServerHandle, tag: str) -> dict:
    return next(f for f in stats(srv, "test-sched")["functions"] if f["tag"] == tag)


def test_idle_container_is_reused(srv: ServerHandle) -> None:
    first = _call(srv, "F('pid').remote()")
    assert _call(srv, "F('pid').remote()") == first
    fn = _function(srv, "pid")
    assert fn["boots_ok"] == 1 and fn["calls_ok"] == 2


def test_container_dying_mid_call_fails_the_call(srv: ServerHandle) -> None:
    out = _call(srv, "F('die').remote(7)")
    assert out.startswith("container_died | container cs-")
    assert "exited (exit status 7) while running test-sched/die (call fc-" in out, out
    assert "attempt 1 of 1); its log lines are above. See `coldsnap logs test-sched`" in out
    assert _call(srv, "F('pid').remote()").startswith("'cs-")  # the server carries on


def test_container_death_is_retried(srv: ServerHandle) -> None:
    assert _call(srv, "F('flaky').remote()") == "'recovered'"
    assert _function(srv, "flaky")["boots_ok"] == 2


def test_a_call_that_raised_is_retried_like_modals(srv: ServerHandle) -> None:
    started = time.monotonic()
    assert _call(srv, "F('raises_twice').remote()") == "3"
    assert time.monotonic() - started >= 3.0  # backoff: 1 s, then 2 s
    out = srv.python(
        "import coldsnap\n"
        "try:\n"
        "    coldsnap.Function.from_name('test-sched', 'always_raises').remote()\n"
        "except ValueError as exc:\n"
        "    print('ValueError', exc)\n"
    )
    assert out.stdout.strip() == "ValueError no luck"
    assert out.stderr.count("always_raises raised ValueError: no luck (attempt 1 of 2); "
                            "trying again in 1 s") == 1
    fn = _function(srv, "always_raises")
    assert fn["calls_error"] == 1 and fn["boots_ok"] == 1


def test_call_timeout_stops_the_container(srv: ServerHandle) -> None:
    out = _call(srv, "F('slow').remote(30)")
    assert out.startswith("timeout | call fc-")
    assert "ran longer than its timeout of 1 s" in out
    assert _call(srv, "F('slow').remote(0.01)") == "'done'"


def test_idle_containers_scale_down(srv: ServerHandle) -> None:
    first = _call(srv, "F('brief').remote()")
    wait_for(lambda: not _function(srv, "brief")["containers"], 15, "brief to scale down")
    assert _call(srv, "F('brief').remote()") != first


def test_min_containers_are_kept_warm(srv: ServerHandle) -> None:
    fn = wait_for(lambda: _function(srv, "warm")["containers"] and _function(srv, "warm"),
                  15, "the warm container")
    assert fn["calls_ok"] == 0
    warm_pid = _call(srv, "F('warm').remote()")
    assert _function(srv, "warm")["boots_ok"] == 1
    assert warm_pid.startswith("'cs-")


WARM_APP = """
import coldsnap

app = coldsnap.App("test-warm-drain")


@app.function(min_containers=1)
def warm() -> str:
    return "warm"
"""


def _warm_ids(server: ServerHandle) -> list[str]:
    return [c["id"] for f in stats(server, "test-warm-drain")["functions"]
            for c in f["containers"]]


def test_drain_brings_the_warm_pool_back(server: ServerHandle, tmp_path: Path) -> None:
    server.cli("deploy", str(write_app(tmp_path, "warm", WARM_APP)))
    before = wait_for(lambda: _warm_ids(server), 30, "the warm container")
    assert "containers stopped" in server.cli("apps", "drain", "test-warm-drain").stdout
    after = wait_for(lambda: _warm_ids(server), 30, "a warm container after the drain")
    assert set(after).isdisjoint(before)  # a new container, booted with no call


def test_on_the_criu_engine_these_containers_were_restored(srv: ServerHandle) -> None:
    kinds = {b["kind"] for b in stats(srv, "test-sched")["boots"]}
    expected = {"restored", "snapshot-created"} if srv.engine == "criu" else {"plain"}
    assert expected <= kinds, kinds
