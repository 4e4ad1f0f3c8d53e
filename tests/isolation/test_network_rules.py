"""Every iptables rule the criu engine installs (coldsnap/engine/netns.py), seen from
fresh and restored containers: DNS to the host passes and nothing else of the host;
link-local addresses and spoofed sources are dropped on the way out, while the same
packets to an ordinary address, or with the container's own source, get through."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from coldsnap.engine.netns import FORWARD_DROPS, SUBNET
from tests.conftest import ServerHandle
from tests.isolation.conftest import KINDS, call_probe
from tests.isolation.outside import Outside


@pytest.fixture(scope="module")
def host_services() -> Iterator[dict[str, int]]:
    """A DNS-port UDP echo and an ordinary TCP listener on every address of the host."""
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        dns.bind(("0.0.0.0", 53))
    except OSError as exc:
        pytest.fail(f"the DNS rule's test needs UDP port 53 free on the host: {exc}")
    dns.settimeout(0.2)
    other = socket.create_server(("0.0.0.0", 0))
    stop = threading.Event()

    def answer_dns() -> None:
        while not stop.is_set():
            try:
                _, peer = dns.recvfrom(64)
            except TimeoutError:
                continue
            dns.sendto(b"dns-ok", peer)

    thread = threading.Thread(target=answer_dns, daemon=True)
    thread.start()
    yield {"dns": 53, "other": other.getsockname()[1]}
    stop.set()
    thread.join()
    dns.close()
    other.close()


def _drops(match: tuple[str, ...]) -> int:
    """Packets the FORWARD rule ``-i csv+ MATCH -j DROP`` has dropped so far."""
    rule = f"-A FORWARD {' '.join(match)} -i csv+ -j DROP"
    for line in subprocess.run(["iptables-save", "-c", "-t", "filter"], capture_output=True,
                               text=True, check=True).stdout.splitlines():
        counters, _, text = line.partition(" ")
        if _normal(text) == _normal(rule):
            return int(counters.strip("[]").split(":")[0])
    raise AssertionError(f"no rule {rule!r} in iptables-save")


def _normal(rule: str) -> list[str]:
    return sorted(rule.split())


@pytest.mark.parametrize("kind", KINDS)
def test_dns_to_the_host_passes_and_nothing_else_of_the_host(
    probe_server: ServerHandle, host_services: dict[str, int], kind: str
) -> None:
    with socket.create_connection(("127.0.0.1", host_services["other"]), timeout=3):
        pass  # the host's own listener accepts the host
    answer = call_probe(probe_server, kind, "network", host_services["dns"],
                        f"gateway:{host_services['other']}")
    assert answer["dns"] == "dns-ok"
    assert answer["tcp"] == "TimeoutError"  # dropped by the INPUT rules


@pytest.mark.parametrize("kind", KINDS)
def test_link_local_addresses_are_dropped(
    probe_server: ServerHandle, outside: Outside, kind: str
) -> None:
    with socket.create_connection((outside.link_local, 8080), timeout=3) as conn:
        assert conn.recv(2) == b"hi"  # the host reaches it
    ordinary = call_probe(probe_server, kind, "network", 1, f"{outside.address}:8080")
    assert ordinary["tcp"] == "ok:hi"  # a container's packets are forwarded
    before = _drops(("-d", "169.254.0.0/16"))
    answer = call_probe(probe_server, kind, "network", 1, f"{outside.link_local}:8080")
    assert answer["tcp"] == "TimeoutError"
    assert _drops(("-d", "169.254.0.0/16")) > before


@pytest.mark.parametrize("kind", KINDS)
def test_packets_with_a_spoofed_source_are_dropped(
    probe_server: ServerHandle, outside: Outside, kind: str
) -> None:
    spoofed = ("!", "-s", SUBNET)
    assert spoofed in FORWARD_DROPS
    target = f"{outside.address}:9999"
    own = call_probe(probe_server, kind, "spoof", "", target)["own_address"]
    call_probe(probe_server, kind, "spoof", own, target)
    before = _drops(spoofed)
    call_probe(probe_server, kind, "spoof", "192.0.2.7", target)
    time.sleep(0.5)
    received = outside.received.read_text()
    assert f"from {own}" in received  # its own source gets through
    assert "192.0.2.7" not in received
    assert _drops(spoofed) > before
