"""Network namespace pools (real `ip`, root): what each kind holds, and that an index
(so an address) is not handed out again at once."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from coldsnap.engine.netns import NETNS_OWNERS, NetnsPool


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")


def _links(name: str) -> list[str]:
    out = subprocess.run(["ip", "-n", name, "-o", "link"], capture_output=True, text=True,
                         check=True).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


def test_a_loopback_pool_holds_loopback_alone_and_up() -> None:
    pool = NetnsPool(NETNS_OWNERS, 0, outbound=False)
    try:
        ns = pool.acquire()
        assert _links(ns.name) == ["lo"]
        state = subprocess.run(["ip", "-n", ns.name, "-o", "link", "show", "lo"],
                               capture_output=True, text=True, check=True).stdout
        assert "UP" in state.split("<")[1].split(">")[0].split(",")
    finally:
        pool.close()


def test_a_released_index_is_not_the_next_one_handed_out() -> None:
    pool = NetnsPool(NETNS_OWNERS, 0)
    try:
        first = pool.acquire()
        assert _links(first.name) == ["eth0", "lo"]
        pool.release(first)
        owner = NETNS_OWNERS / str(first.index)
        deadline = time.monotonic() + 30
        while owner.exists() and time.monotonic() < deadline:  # destroyed in the background
            time.sleep(0.01)
        assert not owner.exists()
        second = pool.acquire()  # lowest-free-first would take first.index again
        assert second.index != first.index
        assert second.container_ip != first.container_ip
    finally:
        pool.close()
