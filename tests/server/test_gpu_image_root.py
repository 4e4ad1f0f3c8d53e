"""GPU functions on an image's own root (debian_slim) through a real server and CRIU,
on a GPU host (scripts/check-gpu-runtime.sh): the host's driver libraries are laid in,
the driver API works, and GPU memory comes back in a restored copy."""

from __future__ import annotations

import json

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import require_criu

REPORT = (
    "import json, coldsnap\n"
    "D = coldsnap.Cls.from_name('test-gpu-image-root', 'DriverApi')\n"
    "print(json.dumps(D().report.remote()))\n"
)


@pytest.mark.gpu
def test_a_debian_slim_root_reaches_the_gpu_and_keeps_its_memory(cuda: None) -> None:
    require_criu()
    srv = ServerHandle("criu").start()
    try:
        srv.cli("deploy", str(APPS / "gpu_image_root.py"), timeout=900)
        first = srv.python(REPORT, timeout=300)
        assert "memory snapshot created in" in first.stderr, first.stderr + srv.log()
        srv.cli("apps", "drain", "test-gpu-image-root")
        second = srv.python(REPORT, timeout=300)
        assert "restored from memory snapshot in" in second.stderr, second.stderr + srv.log()
        for report in (json.loads(first.stdout), json.loads(second.stdout)):
            assert report["device"].startswith("NVIDIA"), report
            assert report["same"], report
            assert report["libcuda"] and all(
                p.startswith("/usr/lib/x86_64-linux-gnu/") for p in report["libcuda"]), report
    finally:
        srv.cleanup()
