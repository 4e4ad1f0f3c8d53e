"""Fleet.fetch's pure logic: the host that fetches a snapshot has room for a container of
the function's size (cpu=, memory=, gpu=), not only for one of the default size."""

from __future__ import annotations

from typing import Any

from coldsnap.server.fleet.agent import Capacity
from coldsnap.server.fleet.fleet import Fleet


class FetchingHost:
    """A host agent that only fetches (records where), as much of one as fetch uses."""

    engine_name, host_key, isolated, store, relay = "none", "k", True, None, None
    store_url = "s3://bucket/prefix"

    def __init__(self, host: str, capacity: Capacity, fetched: list[str]) -> None:
        self.host, self.capacity, self._fetched = host, capacity, fetched

    def fetch_remote(self, key: str) -> dict[str, Any] | None:
        self._fetched.append(self.host)
        return {"timings": {"fetch_s": 0.1}, "description": "1 MB"}


def _fleet(fetched: list[str]) -> Fleet:
    small_memory = FetchingHost("a-many-cpus", Capacity(cpus=4, memory_mb=1024), fetched)
    big_memory = FetchingHost("b-much-memory", Capacity(cpus=1, memory_mb=8192), fetched)
    return Fleet([small_memory, big_memory], default_cpus=0.0)  # type: ignore[list-item]


def test_a_default_size_fetch_goes_to_the_least_loaded_host() -> None:
    fetched: list[str] = []
    _fleet(fetched).fetch("key")
    assert fetched == ["a-many-cpus"]  # a tie: the first by name


def test_a_fetch_goes_where_the_functions_memory_fits() -> None:
    fetched: list[str] = []
    result = _fleet(fetched).fetch("key", memory_mb=4096)
    assert fetched == ["b-much-memory"]
    assert result is not None and result.host == "b-much-memory"


def test_a_fetch_goes_where_the_functions_cpus_fit() -> None:
    fetched: list[str] = []
    one_cpu = FetchingHost("a-one-cpu", Capacity(cpus=1, memory_mb=8192), fetched)
    four_cpus = FetchingHost("b-four-cpus", Capacity(cpus=4, memory_mb=8192), fetched)
    fleet = Fleet([one_cpu, four_cpus])  # type: ignore[list-item]
    fleet.fetch("key")
    fleet.fetch("key", cpus=2)
    assert fetched == ["a-one-cpu", "b-four-cpus"]
