"""GPUs during the snapshot phase: hidden, revealed after restore, and a snapshot
refused while a CUDA context is open. Tests marked ``gpu`` skip without one;
run them on a GPU host with scripts/check-gpu-runtime.sh."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coldsnap._runtime import gpu
from tests._runtime.harness import RuntimeSession


def test_open_device_files_sees_only_matching_open_files(tmp_path: Path) -> None:
    prefix = str(tmp_path / "nvidia")
    assert gpu.open_device_files(prefix=prefix) == []
    with open(tmp_path / "nvidia0", "w"), open(tmp_path / "nvidiactl", "w"):
        assert gpu.open_device_files(prefix=prefix) == [
            str(tmp_path / "nvidia0"), str(tmp_path / "nvidiactl"),
        ]
    assert gpu.open_device_files(prefix=prefix) == []


REFUSING_APP = """
import os
import coldsnap

app = coldsnap.App("refusing")

@app.cls(enable_memory_snapshot=True)
class GPUUser:
    @coldsnap.enter(snap=True)
    def harmless(self):
        pass

    @coldsnap.enter(snap=True)
    def load_to_gpu(self):
        self.device = open(os.environ["FAKE_DEVICE"], "w")  # what a CUDA context looks like

    @coldsnap.enter()
    def setup(self):
        print("setup ran after the refusal", flush=True)

    @coldsnap.method()
    def ping(self):
        return "pong"
"""


def test_open_device_after_a_snap_hook_refuses_the_snapshot(tmp_path: Path) -> None:
    session = RuntimeSession.start(
        REFUSING_APP, "GPUUser", snapshot=True,
        env={"FAKE_DEVICE": str(tmp_path / "nvidia0"),
             "COLDSNAP_GPU_DEVICE_PREFIX": str(tmp_path / "nvidia")},
    )
    try:
        header, _ = session.expect("snapshot_refused")
        message = header["message"]
        assert "open since enter(snap=True) hook GPUUser.load_to_gpu" in message
        assert "GPUUser.harmless" not in message
        assert "@coldsnap.enter(snap=False)" in message
        assert str(tmp_path / "nvidia0") in message
        # The container goes on like after ready_to_snapshot: resume, then serve.
        session.send("resume", container_id="cs-refused", env={}, seed=1, restored=False)
        session.expect("ready")
        assert session.call_value("ping") == "pong"
        session.wait_for_log("setup ran after the refusal")
    finally:
        session.close()


def test_an_open_device_is_expected_when_the_function_snapshots_gpu_memory(
    tmp_path: Path,
) -> None:
    # experimental_options={"enable_gpu_snapshot": True}: the engine checkpoints the
    # CUDA state before the dump, so the runtime must not refuse.
    session = RuntimeSession.start(
        REFUSING_APP, "GPUUser", snapshot=True,
        env={"FAKE_DEVICE": str(tmp_path / "nvidia0"),
             "COLDSNAP_GPU_DEVICE_PREFIX": str(tmp_path / "nvidia"),
             "COLDSNAP_GPU_SNAPSHOT": "1"},
    )
    try:
        session.expect("ready_to_snapshot")
        session.send("resume", container_id="cs-gpu-snap", env={}, seed=1, restored=True)
        session.expect("ready")
        assert session.call_value("ping") == "pong"
    finally:
        session.close()


# What the server does around the snapshot phase (docs/protocol.md).
SNAPSHOT_PHASE_ENV = {"CUDA_VISIBLE_DEVICES": "", "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}


def _restored_env() -> dict[str, str | None]:
    return {
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "PYTORCH_NVML_BASED_CUDA_CHECK": os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK"),
    }


def _gpu_env() -> dict[str, str]:
    # NoneEngine passes only the env it is given: CUDA needs the library path.
    keep = ("PATH", "LD_LIBRARY_PATH", "HOME")
    return {k: os.environ[k] for k in keep if k in os.environ}


@pytest.mark.gpu
def test_gpu_availability_false_during_snapshot_true_after_restore(cuda: None) -> None:
    session = RuntimeSession.for_app(
        "gpu_availability.py", "GPUAvailability", snapshot=True,
        env={**_gpu_env(), **SNAPSHOT_PHASE_ENV},
    )
    try:
        session.expect("ready_to_snapshot", timeout=120)
        session.send("resume", container_id="cs-gpu", env=_restored_env(), seed=7, restored=True)
        session.expect("ready", timeout=120)
        report = session.call_value("report")
        assert report["during_snapshot"] is False
        assert report["after_restore"] is True
        assert report["tensor_device"].startswith("cuda")
        lines = session.logs().splitlines()
        assert lines.index("GPUs available: False") < lines.index("GPUs available: True")
    finally:
        session.close()


CUDA_IN_SNAP_HOOK = """
import coldsnap

app = coldsnap.App("cuda-in-snap")

@app.cls(enable_memory_snapshot=True, gpu="any")
class Eager:
    @coldsnap.enter(snap=True)
    def load(self):
        import torch
        self.t = torch.ones(4, device="cuda")

    @coldsnap.method()
    def total(self):
        return float(self.t.sum())
"""


@pytest.mark.gpu
def test_a_real_cuda_context_in_a_snap_hook_is_refused(cuda: None) -> None:
    # The GPU left visible, as if the server failed to hide it: the runtime must notice.
    session = RuntimeSession.start(CUDA_IN_SNAP_HOOK, "Eager", snapshot=True, env=_gpu_env())
    try:
        header, _ = session.expect("snapshot_refused", timeout=120)
        assert "enter(snap=True) hook Eager.load" in header["message"]
        assert "/dev/nvidia" in header["message"]
        session.send("resume", container_id="cs-eager", env={}, seed=1, restored=False)
        session.expect("ready", timeout=60)
        assert session.call_value("total") == 4.0
    finally:
        session.close()
