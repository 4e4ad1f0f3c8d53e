"""GPU driver files on a mount of their own (as /usr/local/nvidia on cloud GPU hosts)
reach from_host() containers, fresh and restored, with a real server and CRIU: an
overlay of the host's "/" alone would show an empty directory there
(coldsnap/engine/host_driver.py)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, stats, write_app

APP = """
import coldsnap

app = coldsnap.App("test-driver-mounts", image=coldsnap.Image.from_host())
DRIVER = {driver!r}


@app.cls(enable_memory_snapshot=True)
class Driver:
    @coldsnap.enter(snap=True)
    def load(self):
        self.at_snapshot = open(DRIVER + "/lib64/libcuda.so.1").read()

    @coldsnap.method()
    def read(self) -> list:
        return [self.at_snapshot, open(DRIVER + "/lib64/libcuda.so.1").read()]
"""
READ = ("import json, coldsnap\n"
        "print(json.dumps(coldsnap.Cls.from_name('test-driver-mounts', 'Driver')().read.remote()))")


@pytest.fixture(scope="module")
def driver() -> Iterator[Path]:
    """A tmpfs mounted where a driver's files would be, holding a fake libcuda."""
    require_criu()
    top = Path(f"/opt/coldsnap-test-nvidia-{uuid.uuid4().hex[:8]}")
    top.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "driver", str(top)], check=True)
    try:
        (top / "lib64").mkdir()
        (top / "lib64" / "libcuda.so.1").write_text("the host's driver")
        yield top
    finally:
        subprocess.run(["umount", "-l", str(top)], check=False)
        top.rmdir()


@pytest.fixture(scope="module")
def srv(driver: Path) -> Iterator[ServerHandle]:
    yield from module_server("criu")


def test_a_driver_mount_is_seen_in_fresh_and_restored_containers(
    srv: ServerHandle, driver: Path, tmp_path: Path,
) -> None:
    srv.cli("deploy", str(write_app(tmp_path, "driver_app", APP.format(driver=str(driver)))))
    first = srv.python(READ)
    assert "memory snapshot created in" in first.stderr, first.stderr + srv.log()
    assert first.stdout.strip() == '["the host\'s driver", "the host\'s driver"]'
    srv.cli("apps", "drain", "test-driver-mounts")
    second = srv.python(READ)
    assert "restored from memory snapshot in" in second.stderr, second.stderr + srv.log()
    assert second.stdout.strip() == first.stdout.strip()
    kinds = [b["kind"] for b in stats(srv, "test-driver-mounts")["boots"]]
    assert kinds[:2] == ["restored", "snapshot-created"]
    # The copy lives in the server's state dir, once, named by its contents.
    copies = list((srv.state_dir / "gpu-driver").iterdir())
    assert len(copies) == 1
    assert (Path(str(copies[0]) + str(driver)) / "lib64" / "libcuda.so.1").is_file()
