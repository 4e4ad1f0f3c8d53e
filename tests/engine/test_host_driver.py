"""Which host mounts count as the GPU driver's, and the layer made of them (pure logic
on a made-up mountinfo; tests/server/test_driver_mounts.py runs it in containers)."""

from __future__ import annotations

import os
from pathlib import Path

from coldsnap.engine.host_driver import (
    LibrariesLayer,
    MountsLayer,
    digest,
    driver_libraries,
    driver_mounts,
    is_driver_path,
)

# Fields: id, parent, dev, root, mount point, options...
MOUNTINFO = """\
22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
23 22 0:5 / /proc rw - proc proc rw
24 22 0:6 / /dev rw - devtmpfs udev rw
25 24 0:7 /nvidia0 /dev/nvidia0 rw - devtmpfs udev rw
26 22 0:30 / /usr/local/nvidia ro - squashfs /dev/vdb ro
27 26 0:31 / /usr/local/nvidia/lib64/extra ro - tmpfs none rw
28 22 0:21 /drv/libcuda.so.1 /usr/lib/x86_64-linux-gnu/libcuda.so.1 ro - ext4 /dev/vda rw
29 22 0:32 / /run/nvidia-persistenced/socket rw - tmpfs tmpfs rw
30 22 0:33 / /srv/my\\040data rw - ext4 /dev/vdc rw
31 22 0:34 / /opt/NVIDIA\\040tools ro - ext4 /dev/vdd rw
"""


def test_driver_mounts_are_nvidia_and_cuda_paths_outside_kernel_dirs() -> None:
    assert driver_mounts(MOUNTINFO) == [
        "/opt/NVIDIA tools",  # escaped space read back; case ignored
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        "/usr/local/nvidia",  # its submount comes along with it
    ]
    assert not is_driver_path("/")
    assert not is_driver_path("/dev/nvidia0")
    assert not is_driver_path("/srv/my data")
    assert is_driver_path("/usr/lib/libnvidia-ml.so.1")


def _fake_driver(tmp_path: Path) -> tuple[Path, Path]:
    top = tmp_path / "usr" / "local" / "nvidia"
    (top / "lib64").mkdir(parents=True)
    (top / "lib64" / "libcuda.so.580").write_bytes(b"driver")
    (top / "lib64" / "libcuda.so.1").symlink_to("libcuda.so.580")
    (top / "bin").mkdir()
    (top / "bin" / "nvidia-smi").write_bytes(b"#!/bin/sh\n")
    (top / "bin" / "nvidia-smi").chmod(0o755)
    info = tmp_path / "mountinfo"
    info.write_text(f"22 1 0:21 / / rw - ext4 /dev/vda rw\n26 22 0:30 / {top} ro - squashfs x ro\n")
    return top, info


def test_the_layer_copies_files_links_and_modes_at_their_paths(tmp_path: Path) -> None:
    top, info = _fake_driver(tmp_path)
    layer = MountsLayer(tmp_path / "state", str(info)).layer()
    assert layer is not None and layer.parent == tmp_path / "state" / "gpu-driver"
    copied = Path(str(layer) + str(top))
    assert (copied / "lib64" / "libcuda.so.580").read_bytes() == b"driver"
    assert os.readlink(copied / "lib64" / "libcuda.so.1") == "libcuda.so.580"
    assert os.access(copied / "bin" / "nvidia-smi", os.X_OK)


def test_the_layer_is_made_once_and_anew_for_another_driver(tmp_path: Path) -> None:
    top, info = _fake_driver(tmp_path)
    first = MountsLayer(tmp_path / "state", str(info)).layer()
    assert first is not None
    marker = first / "made-once"
    marker.write_text("")
    assert MountsLayer(tmp_path / "state", str(info)).layer() == first
    assert marker.exists()  # a second server on this state dir reuses it
    before = digest([str(top)])
    (top / "lib64" / "libcuda.so.590").write_bytes(b"newer driver")
    assert digest([str(top)]) != before
    second = MountsLayer(tmp_path / "state", str(info)).layer()
    assert second is not None and second != first
    assert not first.exists()  # the old driver's copy is gone
    assert Path(str(second) + str(top) + "/lib64/libcuda.so.590").is_file()


def test_no_driver_mounts_no_layer(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text("22 1 0:21 / / rw - ext4 /dev/vda rw\n")
    assert MountsLayer(tmp_path / "state", str(info)).layer() is None
    assert MountsLayer(tmp_path / "state", str(tmp_path / "absent")).layer() is None
    assert not (tmp_path / "state").exists()


LDCONFIG = """\
612 libs found in cache `/etc/ld.so.cache'
\tlibnvidia-ml.so.1 (libc6,x86-64) => {d}/libnvidia-ml.so.1
\tlibnvidia-ml.so.1 (libc6) => /usr/lib32/libnvidia-ml.so.1
\tlibcudart.so.13 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.13
\tlibcuda.so.1 (libc6,x86-64) => {d}/libcuda.so.1
\tlibcuda.so.1 (libc6,x86-64) => /lib/libcuda.so.1
\tlibcuda.so (libc6,x86-64) => {d}/libcuda.so
\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1
"""


def test_driver_libraries_are_the_first_64_bit_path_of_each_driver_soname() -> None:
    assert driver_libraries(LDCONFIG.format(d="/drv")) == {
        "libnvidia-ml.so.1": "/drv/libnvidia-ml.so.1",
        "libcuda.so.1": "/drv/libcuda.so.1",  # not /lib's, listed after it
        "libcuda.so": "/drv/libcuda.so",
    }  # libcudart is CUDA's toolkit, not the driver: images bring their own


def test_the_libraries_layer_puts_them_where_an_image_looks(tmp_path: Path) -> None:
    d = tmp_path / "drv"
    d.mkdir()
    (d / "libcuda.so.580.1").write_bytes(b"cuda")
    (d / "libcuda.so.1").symlink_to("libcuda.so.580.1")
    (d / "libcuda.so").symlink_to("libcuda.so.1")
    (d / "libnvidia-ml.so.1").write_bytes(b"nvml")  # a real file under its soname
    smi = tmp_path / "nvidia-smi"
    smi.write_bytes(b"#!/bin/sh\n")
    smi.chmod(0o755)
    text = LDCONFIG.format(d=d)
    layer = LibrariesLayer(tmp_path / "state", lambda: text, smi=str(smi)).layer()
    assert layer is not None and layer.name.startswith("libraries-")
    lib = layer / "usr" / "lib" / "x86_64-linux-gnu"
    assert sorted(p.name for p in lib.iterdir()) == [
        "libcuda.so", "libcuda.so.1", "libcuda.so.580.1", "libnvidia-ml.so.1"]
    assert os.readlink(lib / "libcuda.so.1") == "libcuda.so.580.1"
    assert (lib / "libcuda.so").read_bytes() == b"cuda"
    assert (lib / "libnvidia-ml.so.1").read_bytes() == b"nvml"
    assert os.access(layer / "usr" / "bin" / "nvidia-smi", os.X_OK)
    # Kept next to the mounts' layer; none without driver libraries.
    assert LibrariesLayer(tmp_path / "state", lambda: text, smi=str(smi)).layer() == layer
    assert LibrariesLayer(tmp_path / "other", lambda: "", smi="").layer() is None


def test_a_mount_that_cannot_be_read_leaves_the_layer_out(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(f"22 1 0:21 / / rw - ext4 /dev/vda rw\n"
                    f"26 22 0:30 / {tmp_path}/gone/nvidia ro - squashfs x ro\n")
    assert MountsLayer(tmp_path / "state", str(info)).layer() is None
