"""A package upgraded on the host after a snapshot: the next cold boot makes a new
snapshot instead of restoring the old modules over the new files."""

from __future__ import annotations

import shutil
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server, require_criu, stats

CALL = ("import coldsnap\n"
        "print(coldsnap.Function.from_name('test-square', 'square').remote(7))\n")


@pytest.fixture
def criu_server() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


@pytest.fixture
def probe_package() -> Iterator[Path]:
    """A distribution 'installed' where the server's interpreter (a from_host() image's)
    looks: its metadata dir, which an upgrade renames."""
    path = Path(sysconfig.get_paths()["purelib"]) / "coldsnap_probe-1.0.dist-info"
    path.mkdir()
    try:
        yield path
    finally:
        for version in ("1.0", "2.0"):
            shutil.rmtree(path.with_name(f"coldsnap_probe-{version}.dist-info"),
                          ignore_errors=True)


def test_a_host_package_upgrade_makes_a_new_snapshot(
    criu_server: ServerHandle, probe_package: Path
) -> None:
    criu_server.cli("deploy", str(APPS / "square.py"))
    assert criu_server.python(CALL).stdout.strip() == "49"
    criu_server.cli("apps", "drain", "test-square")
    assert criu_server.python(CALL).stdout.strip() == "49"
    probe_package.rename(probe_package.with_name("coldsnap_probe-2.0.dist-info"))
    criu_server.cli("apps", "drain", "test-square")
    assert criu_server.python(CALL).stdout.strip() == "49"
    kinds = [b["kind"] for b in reversed(stats(criu_server, "test-square")["boots"])
             if b["tag"] == "square"]
    assert kinds == ["snapshot-created", "restored", "snapshot-created"]
