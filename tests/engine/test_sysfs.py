"""/sys in real containers, plain and restored, on the host's root and on a Debian
image in a user namespace: lscpu runs, the CPUs are there for os.cpu_count and joblib
(no "found 0 physical cores" warning), and what the snapshot phase read of /sys
matches what the restored copy reads (tests/apps/sysfs_reader.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server, require_criu

HOST_ONLINE = Path("/sys/devices/system/cpu/online").read_text().strip()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    require_criu()
    for handle in module_server("criu"):
        handle.cli("deploy", str(APPS / "sysfs_reader.py"), timeout=900)
        yield handle


def call(server: ServerHandle, expression: str) -> object:
    out = server.python(f"import json, coldsnap; print(json.dumps({expression}))")
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_sees_the_cpus(seen: object) -> None:
    assert isinstance(seen, dict)
    assert seen["lscpu_rc"] == 0, seen["lscpu_err"]
    assert seen["online"] == HOST_ONLINE
    assert seen["cpu_count"] == os.cpu_count()
    assert 1 <= seen["affinity"] <= seen["cpu_count"]
    assert seen["physical"] >= 1 and seen["warnings"] == [], seen
    assert seen["net"] == ["eth0", "lo"] and seen["read_only"] is True, seen


@pytest.mark.parametrize("function", ["plain", "plain_debian"])
def test_a_plain_container_reads_the_cpus_from_sys(server: ServerHandle, function: str) -> None:
    assert_sees_the_cpus(call(server, f"coldsnap.Function.from_name('sysfs-reader', "
                                      f"{function!r}).remote()"))


@pytest.mark.parametrize("cls", ["Snapped", "SnappedDebian"])
def test_sys_reads_the_same_in_the_snapshot_phase_and_after_restore(
    server: ServerHandle, cls: str
) -> None:
    expression = f"coldsnap.Cls.from_name('sysfs-reader', {cls!r})().both.remote()"
    call(server, expression)  # makes the snapshot
    server.cli("apps", "stop", "sysfs-reader")  # its containers go; the same version again
    server.cli("deploy", str(APPS / "sysfs_reader.py"), timeout=900)
    restores = server.log().count("restored from memory snapshot")
    before, after = call(server, expression)  # type: ignore[misc]
    assert server.log().count("restored from memory snapshot") > restores, server.log()[-4000:]
    assert_sees_the_cpus(before)
    assert_sees_the_cpus(after)
