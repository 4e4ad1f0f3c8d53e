"""Which host GPUs a container sees for its ``gpu=`` (engine/gpu.py): pure logic over a
host's GPU list, and the driver's files read from a fake directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from coldsnap.engine.gpu import (
    GPU_INFO_DIR_ENV,
    GpuUnavailable,
    HostGpu,
    cuda_visible_devices,
    host_gpus,
    select_gpus,
    visible_to_server,
)
from coldsnap.wire.gpus import parse_gpu

H100 = [HostGpu("NVIDIA H100 80GB HBM3", f"GPU-h100-{i}") for i in range(2)]
A100 = [HostGpu("NVIDIA A100-SXM4-80GB", f"GPU-a100-{i}") for i in range(2)]
H200 = [HostGpu("NVIDIA H200", "GPU-h200-0")]


def uuids(gpus: list[HostGpu]) -> list[str]:
    return [gpu.uuid for gpu in gpus]


def test_a_count_limits_how_many_gpus_are_given() -> None:
    assert uuids(select_gpus(parse_gpu("any"), A100 + H100)) == ["GPU-a100-0"]
    assert uuids(select_gpus(parse_gpu("H100:2"), A100 + H100)) == ["GPU-h100-0", "GPU-h100-1"]


def test_fallbacks_are_tried_in_order() -> None:
    assert uuids(select_gpus(parse_gpu(["H100:2", "A100-80GB"]), A100 + H100[:1])) == [
        "GPU-a100-0"]
    assert uuids(select_gpus(parse_gpu(["H100", "A100-80GB"]), A100 + H100)) == ["GPU-h100-0"]


def test_an_h100_may_be_an_h200_unless_pinned() -> None:
    assert uuids(select_gpus(parse_gpu("H100"), H200)) == ["GPU-h200-0"]
    with pytest.raises(GpuUnavailable) as info:
        select_gpus(parse_gpu("H100!"), H200)
    assert str(info.value).startswith(
        'gpu="H100!" can\'t be met on this host: its GPUs are 0: NVIDIA H200. Ask for a type')


def test_too_few_gpus_names_the_hosts() -> None:
    with pytest.raises(GpuUnavailable, match=r'gpu="H100:2", "T4" can\'t be met on this host: '
                       r"its GPUs are 0: NVIDIA H200\. "):
        select_gpus(parse_gpu(["H100:2", "T4"]), H200)


def test_the_servers_own_cuda_visible_devices_narrows_the_host() -> None:
    gpus = A100 + H100
    assert visible_to_server(gpus, None) == gpus
    assert uuids(visible_to_server(gpus, "1,2")) == ["GPU-a100-1", "GPU-h100-0"]
    assert uuids(visible_to_server(gpus, "GPU-h100")) == ["GPU-h100-0", "GPU-h100-1"]
    assert visible_to_server(gpus, "") == []


def fake_driver(root: Path, gpus: list[tuple[str, str, str]]) -> Path:
    for bus, name, uuid in gpus:
        (root / bus).mkdir(parents=True)
        (root / bus / "information").write_text(
            f"Model: \t\t {name}\nIRQ:   \t\t 42\nGPU UUID: \t {uuid}\n"
            f"Bus Location: \t {bus}\nDevice Minor: \t {bus[-1]}\nGPU Excluded:\t No\n")
    return root


def test_host_gpus_reads_the_drivers_files_in_bus_order(tmp_path: Path) -> None:
    root = fake_driver(tmp_path, [("0000:02:00.1", "NVIDIA H200", "GPU-b"),
                                  ("0000:01:00.0", "Tesla T4", "GPU-a")])
    assert host_gpus(str(root)) == [HostGpu("Tesla T4", "GPU-a", "0000:01:00.0", 0),
                                    HostGpu("NVIDIA H200", "GPU-b", "0000:02:00.1", 1)]
    assert host_gpus(str(tmp_path / "none")) == []


def test_a_host_without_gpus_leaves_cuda_visible_devices_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GPU_INFO_DIR_ENV, str(tmp_path))
    assert cuda_visible_devices(parse_gpu("H100:8")) is None  # runs on the CPU, as before
    fake_driver(tmp_path, [("0000:01:00.0", "Tesla T4", "GPU-t4"),
                           ("0000:02:00.0", "NVIDIA L4", "GPU-l4")])
    assert cuda_visible_devices(()) is None
    assert cuda_visible_devices(parse_gpu(["A10G", "l4"])) == "GPU-l4"
    assert cuda_visible_devices(parse_gpu("any:2")) == "GPU-t4,GPU-l4"
    with pytest.raises(GpuUnavailable, match="its GPUs are 0: Tesla T4, 1: NVIDIA L4"):
        cuda_visible_devices(parse_gpu("H100"))
