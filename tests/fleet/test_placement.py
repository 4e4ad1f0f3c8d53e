"""Placement's pure logic: room, preference for the snapshot's hosts, spreading."""

from __future__ import annotations

from coldsnap.engine import ContainerSpec
from coldsnap.server.fleet.agent import Capacity
from coldsnap.server.fleet.placement import Demand, HostLoad, choose, no_room_message

ONE_CPU = Demand(cpus=1.0)


def hosts(*loads: float) -> dict[str, tuple[Capacity | None, HostLoad]]:
    return {f"h{i}": (Capacity(cpus=2, memory_mb=4096), HostLoad(cpus=used))
            for i, used in enumerate(loads)}


def test_spreads_to_the_least_loaded_host() -> None:
    assert choose(hosts(1, 0), ONE_CPU) == "h1"
    assert choose(hosts(0, 0), ONE_CPU) == "h0"  # a tie: a stable order


def test_prefers_a_host_holding_the_snapshot_while_it_has_room() -> None:
    assert choose(hosts(1, 0), ONE_CPU, prefer=frozenset({"h0"})) == "h0"
    assert choose(hosts(2, 0), ONE_CPU, prefer=frozenset({"h0"})) == "h1"


def test_no_room_says_what_is_free() -> None:
    full = hosts(2, 2)
    assert choose(full, ONE_CPU) is None
    message = no_room_message(full, ONE_CPU)
    assert "no host in the fleet has room" in message and "h1: 0 CPUs" in message


def test_memory_and_gpus_count() -> None:
    assert choose(hosts(0), Demand(cpus=1, memory_mb=8192)) is None
    assert choose(hosts(0), Demand(cpus=1, gpus=1)) is None


def test_unlimited_host_always_has_room() -> None:
    assert choose({"local": (None, HostLoad(cpus=99))}, ONE_CPU) == "local"


def test_demand_of_a_spec() -> None:
    spec = ContainerSpec(argv=["x"], env={"CUDA_VISIBLE_DEVICES": "0,1"}, memory_mb=512)
    assert Demand.of(spec, default_cpus=0.0) == Demand(cpus=1.0, memory_mb=512, gpus=2)
    assert Demand.of(ContainerSpec(argv=["x"], cpus=0.5), 2.0).cpus == 0.5
