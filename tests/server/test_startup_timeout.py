"""With CRIU: startup_timeout=, else timeout=, bounds a container's imports and enter
hooks; past it the container is stopped and its calls fail naming the limit."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import require_criu, stats

APP = "test-startup-timeout"
# Prints how each call ended and how long it took, one line per call.
CALLS = """
import time, coldsnap
C = coldsnap.Cls.from_name({app!r}, {cls!r})
t0 = time.monotonic()
calls = [C().run.spawn() for _ in range({n})]
for call in calls:
    try:
        outcome = call.get()
    except Exception as exc:
        outcome = f"{{type(exc).__name__}}: {{exc}}"
    print(f"{{time.monotonic() - t0:.1f}} | {{outcome}}".replace("\\n", " "))
"""


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    handle = ServerHandle("criu").start()
    try:
        handle.cli("deploy", str(APPS / "slow_startup.py"))
        yield handle
    finally:
        handle.cleanup()


def calls(srv: ServerHandle, cls: str, n: int = 1) -> list[tuple[float, str]]:
    lines = srv.python(CALLS.format(app=APP, cls=cls, n=n)).stdout.splitlines()
    return [(float(took), outcome) for took, outcome in (ln.split(" | ", 1) for ln in lines)]


def snapshots_of(srv: ServerHandle, cls: str) -> list[dict[str, object]]:
    rows = json.loads(srv.cli("snapshots", "ls", "--json").stdout)
    return [r for r in rows if r.get("app") == APP and f"-{cls}" in str(r.get("key"))]


def test_a_hook_past_timeout_fails_the_queued_calls_before_the_snapshot(
        srv: ServerHandle) -> None:
    ended = calls(srv, "HangsBeforeSnapshot", n=2)  # max_containers=1: both wait on one boot
    words = (f"container startup of {APP}/HangsBeforeSnapshot (imports and @enter hooks) "
             "took over 3 s")
    for took, outcome in ended:
        assert took < 15, ended
        assert words in outcome and "(timeout=3 bounds startup too" in outcome, ended
        assert "raise startup_timeout=" in outcome, ended
    assert snapshots_of(srv, "HangsBeforeSnapshot") == []  # stopped before the dump
    fn = next(f for f in stats(srv, APP)["functions"] if f["tag"] == "HangsBeforeSnapshot")
    assert fn["boots_failed"] >= 1 and fn["calls_failed"] == 2, fn
    assert f"boot failed: {words}" in srv.log()


def test_a_restored_hook_past_timeout_fails_without_blaming_the_snapshot(
        srv: ServerHandle) -> None:
    for _ in range(2):  # the boot that made the snapshot, then one restoring it
        [(took, outcome)] = calls(srv, "HangsAfterRestore")
        assert took < 20 and "HangsAfterRestore (imports and @enter hooks) took over 3 s" \
            in outcome, outcome
    assert len(snapshots_of(srv, "HangsAfterRestore")) == 1
    assert "booting without a snapshot" not in srv.log()


def test_startup_timeout_bounds_startup_apart_from_timeout(srv: ServerHandle) -> None:
    [(took, outcome)] = calls(srv, "HangsWithoutSnapshot")
    assert took < 15 and "took over 2 s" in outcome and "(startup_timeout=2)" in outcome, outcome
    [(took, outcome)] = calls(srv, "SlowButAllowed")  # timeout=3, a 5 s hook
    assert outcome == "ran", outcome
