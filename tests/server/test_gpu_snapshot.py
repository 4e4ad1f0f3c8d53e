"""experimental_options={"enable_gpu_snapshot": True} through a real server and
CRIU: the snapshot phase sees the GPU, and on a GPU host the weights a snap=True
hook put on the GPU are there, unchanged, in a restored copy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server, require_criu, stats

REPORT = (
    "import json\n"
    "import coldsnap\n"
    "G = coldsnap.Cls.from_name('test-gpu-snapshot', 'GpuWeights')\n"
    "print(json.dumps(G().report.remote()))\n"
)


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


@pytest.fixture(scope="module")
def reports(srv: ServerHandle) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the first cold boot (snapshot created) and a restored one report."""
    app_file = APPS / "gpu_snapshot.py"
    deployed = srv.cli("deploy", str(app_file)).stdout
    assert "gpu memory snapshot" in deployed
    first = srv.python(REPORT)
    assert "memory snapshot created in" in first.stderr, first.stderr + srv.log()
    srv.cli("apps", "drain", "test-gpu-snapshot")
    second = srv.python(REPORT)
    assert "creating memory snapshot" not in second.stderr
    assert "restored from memory snapshot in" in second.stderr, second.stderr + srv.log()
    kinds = [b["kind"] for b in stats(srv, "test-gpu-snapshot")["boots"]]
    assert kinds[:2] == ["restored", "snapshot-created"]  # newest first
    return json.loads(first.stdout), json.loads(second.stdout)


def test_the_snapshot_phase_keeps_the_gpu_visible(
    reports: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    for report in reports:
        env = report["env"]
        assert env["COLDSNAP_GPU_SNAPSHOT"] == "1"
        assert env["CUDA_VISIBLE_DEVICES"] != ""  # not hidden, unlike a plain snapshot
        assert env["PYTORCH_NVML_BASED_CUDA_CHECK"] is None


@pytest.mark.gpu
def test_gpu_memory_comes_back_after_restore(
    reports: tuple[dict[str, Any], dict[str, Any]], cuda: None,
) -> None:
    _, restored = reports
    assert restored["device_at_snapshot"].startswith("cuda")
    assert restored["device_now"] == restored["device_at_snapshot"]
    assert restored["sum_now"] == restored["sum_at_snapshot"]
