"""Container limits: the words for limits reached (cgroup counters), and containers' disks
(an ext4 filesystem of each container's own, from a pool of spares)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from coldsnap.engine.cgroups import CgroupLimits
from coldsnap.engine.disks import DiskPool, full_words, size_words


def test_each_limit_reached_is_reported_once_per_new_count(tmp_path: Path) -> None:
    for controller in ("memory", "cpu", "pids"):
        (tmp_path / controller).mkdir()  # a cgroup v1 layout, in plain files
    limits = CgroupLimits(memory_mb=2048, cpus=0, pids=4096, root=tmp_path)
    remove = limits.apply("cs-1", [])
    memory, pids = (tmp_path / "memory/coldsnap/cs-1", tmp_path / "pids/coldsnap/cs-1")
    assert (memory / "memory.limit_in_bytes").read_text() == str(2048 << 20)
    assert (pids / "pids.max").read_text() == "4096"
    assert limits.reached("cs-1") == []

    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    (pids / "pids.events").write_text("max 3\n")
    assert limits.reached("cs-1") == [
        "container ran out of memory (limit 2048 MiB): raise memory=",
        "too many processes (limit 4096)",
    ]
    assert limits.reached("cs-1") == []  # nothing new since
    (pids / "pids.events").write_text("max 4\n")
    assert limits.reached("cs-1") == ["too many processes (limit 4096)"]
    for name in ("memory.oom_control", "pids.events", "memory.limit_in_bytes", "pids.max"):
        for group in (memory, pids):
            (group / name).unlink(missing_ok=True)
    remove()
    assert not memory.exists() and not pids.exists()


def test_sizes_are_named_in_gib_when_whole() -> None:
    assert (size_words(10240), size_words(64), size_words(1536)) == ("10 GiB", "64 MiB",
                                                                      "1536 MiB")


@pytest.fixture
def pool(tmp_path: Path) -> DiskPool:
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not shutil.which("losetup"):
        pytest.skip("needs root, mkfs.ext4 and losetup (scripts/setup.sh)")
    run = tmp_path / "run"
    run.mkdir()
    return DiskPool(tmp_path / "disks", run, spares=1)


def test_a_disk_holds_its_size_on_disk_and_goes_without_a_trace(
    pool: DiskPool, tmp_path: Path
) -> None:
    target = tmp_path / "run" / "c1"
    try:
        pool.attach(32, target, "cs-1")
        st = os.statvfs(target)
        assert 28 << 20 < st.f_blocks * st.f_frsize <= 32 << 20
        assert full_words(target, 32) is None
        with pytest.raises(OSError) as info, open(target / "fill", "wb") as out:
            for _ in range(40):
                out.write(b"x" * 2**20)
                out.flush()
                os.fsync(out.fileno())
        assert info.value.errno == 28  # ENOSPC
        assert full_words(target, 32) == (
            "no space left in the container's disk (limit 32 MiB): raise ephemeral_disk=")
        assert pool.image_of("cs-1").stat().st_blocks * 512 > 20 << 20  # on disk, in the image
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)
        pool.delete("cs-1")
        pool.close()
    assert not pool.image_of("cs-1").exists()
    assert list(pool.images.iterdir()) == []  # the spares' images too
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path) not in mounts
