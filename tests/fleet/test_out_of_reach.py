"""A snapshot the fleet holds on hosts that can't take a container now is not "gone":
Fleet.restore raises SnapshotOutOfReach saying where it is and why, and the boot's
fallback line repeats it (boot.py)."""

from __future__ import annotations

from typing import Any

import pytest

from coldsnap.engine import Container, ContainerSpec
from coldsnap.server.fleet.agent import Capacity
from coldsnap.server.fleet.fleet import Fleet, SnapshotOutOfReach


class Host:
    """A host agent that holds a snapshot or not, as much of one as Fleet.restore uses."""

    engine_name, host_key, isolated, store, store_url, relay = "none", "k", True, None, "", None

    def __init__(self, host: str, cpus: float, holds: bool) -> None:
        self.host, self.capacity, self.holds = host, Capacity(cpus=cpus, memory_mb=8192), holds

    def lookup(self, key: str) -> Any:
        return object() if self.holds else None

    def restore(self, key: str, spec: ContainerSpec) -> Container:
        raise AssertionError("no restore: the holder is full")


def test_a_snapshot_on_a_full_host_is_out_of_reach_not_gone() -> None:
    fleet = Fleet([Host("a-full", 0.5, True), Host("b-free", 4, False)])  # type: ignore[list-item]
    with pytest.raises(SnapshotOutOfReach) as caught:
        fleet.restore("k1", ContainerSpec(argv=["true"], cpus=1.0))
    message = str(caught.value)
    assert message.startswith("memory snapshot k1 is on hosts that are full or draining "
                              "(a-full)"), message
    assert "gone" not in message


def test_a_snapshot_on_a_draining_host_is_out_of_reach() -> None:
    fleet = Fleet([Host("a-draining", 4, True), Host("b-free", 4, False)])  # type: ignore[list-item]
    fleet.drain("a-draining", "maintenance")
    with pytest.raises(SnapshotOutOfReach, match=r"k1 is on hosts that are full or draining "
                                                 r"\(a-draining\)"):
        fleet.restore("k1", ContainerSpec(argv=["true"]))
