"""/sys in a from_host() container, plain and restored: read-only, the CPUs there (as
lscpu, os.cpu_count and joblib read them), only the container's own network devices,
and nothing of the host's firmware, debugfs or cgroup tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.isolation.conftest import KINDS, call_probe


@pytest.mark.parametrize("kind", KINDS)
def test_sys_shows_the_cpus(probe_server: ServerHandle, kind: str) -> None:
    answer = call_probe(probe_server, kind, "sysfs")
    assert answer["online"] == Path("/sys/devices/system/cpu/online").read_text().strip()
    assert answer["lscpu_rc"] == 0, answer["lscpu_err"]
    assert answer["lscpu_cpus"] == [str(os.cpu_count())]
    assert answer["cpu_count"] == os.cpu_count()
    assert 1 <= answer["affinity"] <= answer["cpu_count"]


@pytest.mark.parametrize("kind", KINDS)
def test_sys_is_read_only_and_hides_the_hosts_secrets(
    probe_server: ServerHandle, kind: str
) -> None:
    answer = call_probe(probe_server, kind, "sysfs")
    assert answer["read_only"] is True
    assert answer["writable"] == []
    assert set(answer["writes"].values()) <= {"EROFS", "EACCES", "ENOENT", "EPERM"}, answer
    assert answer["firmware"] == {"entries": []}  # masked (ACPI tables, EFI variables)
    assert answer["debug"] == {"entries": []}  # debugfs is a mount of its own
    assert answer["cgroup"] == {"entries": []}  # the host's cgroup tree is not there


@pytest.mark.parametrize("kind", KINDS)
def test_sys_shows_only_the_containers_own_network_devices(
    probe_server: ServerHandle, kind: str
) -> None:
    answer = call_probe(probe_server, kind, "sysfs")
    assert answer["net"] == ["eth0", "lo"]  # its veth end (netns.py) and loopback
    # The host's /sys lists the host ends of every container's veth besides.
    assert any(name.startswith("csv") for name in os.listdir("/sys/class/net"))
