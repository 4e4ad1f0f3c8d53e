"""A slow host agent is not a lost one (liveness.py): a timed-out call fails alone and the
boot goes on elsewhere; the host is lost when Ray says its node is dead or after
LOST_AFTER failed liveness checks in a row."""

from __future__ import annotations

from typing import Any

import pytest

from coldsnap.engine import Container, ContainerSpec, SnapshotMiss
from coldsnap.server.fleet.agent import Capacity
from coldsnap.server.fleet.fleet import Fleet, SnapshotOutOfReach
from coldsnap.server.fleet.liveness import LOST_AFTER, HostSlow, Liveness


def test_a_timeout_from_a_host_that_answers_a_check_is_only_slow() -> None:
    liveness = Liveness("vm/a", node_alive=lambda: True, check=lambda: True)
    for _ in range(LOST_AFTER + 2):
        with pytest.raises(HostSlow, match=r"host vm/a was slow: it did not answer restore "
                                           r"within 90 s \(it answers other calls"):
            liveness.timed_out("restore", 90.0)


def test_a_host_is_lost_after_repeated_failed_checks_and_an_answer_resets_the_count() -> None:
    liveness = Liveness("vm/a", node_alive=lambda: True, check=lambda: False)
    for _ in range(LOST_AFTER - 1):
        with pytest.raises(HostSlow, match="unless it misses"):
            liveness.timed_out("poll", 30.0)
    liveness.answered()  # a call came back meanwhile: the count starts again
    for _ in range(LOST_AFTER - 1):
        with pytest.raises(HostSlow):
            liveness.timed_out("poll", 30.0)
    reason = liveness.timed_out("poll", 30.0)
    assert reason == (f"host vm/a was slow: it did not answer poll within 30 s, nor "
                      f"{LOST_AFTER} liveness checks in a row")


def test_a_host_whose_node_ray_lists_as_dead_is_lost_at_once() -> None:
    checked: list[int] = []
    liveness = Liveness("vm/a", node_alive=lambda: False, check=lambda: bool(checked.append(1)))
    assert liveness.timed_out("poll", 30.0).startswith(
        "host vm/a is gone: Ray lists its node as dead")
    assert not checked


class SlowHost:
    """A host agent whose engine calls time out (HostSlow), as much of one as Fleet uses."""

    engine_name, host_key, isolated, store, store_url, relay = "none", "k", True, None, "", None

    def __init__(self, host: str, slow: bool, started: list[str]) -> None:
        self.host, self.slow, self._started = host, slow, started
        self.capacity = Capacity(cpus=4, memory_mb=8192)

    def _maybe_slow(self, method: str) -> None:
        self._started.append(self.host)
        if self.slow:
            raise HostSlow(f"host {self.host} was slow: it did not answer {method} within 90 s")

    def start(self, spec: ContainerSpec) -> Container:
        self._maybe_slow("start")
        return Container(f"cs-{self.host}", 1, None, None, None)  # type: ignore[arg-type]

    def restore(self, key: str, spec: ContainerSpec) -> Container:
        self._maybe_slow("restore")
        raise AssertionError("only the slow host holds it")

    def lookup(self, key: str) -> Any:
        return object() if self.slow else None


def _fleet(started: list[str]) -> Fleet:
    # The slow host is the first by name: placement tries it first.
    return Fleet([SlowHost("a-slow", True, started),  # type: ignore[list-item]
                  SlowHost("b-quick", False, started)])


def test_a_start_on_a_slow_host_goes_to_another_and_the_slow_one_stays() -> None:
    started: list[str] = []
    fleet = _fleet(started)
    container = fleet.start(ContainerSpec(argv=["true"]))
    assert started == ["a-slow", "b-quick"] and container.id == "cs-b-quick"
    assert {h["host"] for h in fleet.hosts()} == {"a-slow", "b-quick"}  # not lost


def test_a_restore_on_a_slow_host_is_a_miss_that_does_not_call_the_snapshot_gone() -> None:
    started: list[str] = []
    fleet = _fleet(started)
    with pytest.raises(SnapshotOutOfReach, match=r"memory snapshot k1 could not be restored "
                                                 r"now: host a-slow was slow") as caught:
        fleet.restore("k1", ContainerSpec(argv=["true"]))
    assert isinstance(caught.value, SnapshotMiss)  # the boot falls back to a plain boot
    assert {h["host"] for h in fleet.hosts()} == {"a-slow", "b-quick"}
