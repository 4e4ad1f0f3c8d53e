"""LayerCache with real mounts: layers as loop-mounted ext4 images under a container's root."""

import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coldsnap.engine.base import new_container_id
from coldsnap.engine.layers import LayerCache
from coldsnap.engine.sandbox import ContainerDirs, ensure_tmpfs
from tests.end_to_end import criu_missing


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        criu_missing("mounts overlays: needs root")
    if os.stat(tmp_path).st_dev != os.stat("/").st_dev:
        pytest.skip("the host files a layer covers must be on the root filesystem")
    run = tmp_path / "run"
    ensure_tmpfs(run)
    yield run
    subprocess.run(["umount", "-l", str(run)], check=False)


@pytest.fixture
def cache(run_dir: Path, tmp_path: Path) -> Iterator[LayerCache]:
    layers = LayerCache(run_dir, tmp_path / "images")
    yield layers
    layers.close()


def whiteout(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR, 0)


def make_layer(tmp_path: Path) -> tuple[Path, Path]:
    """A host dir on the root filesystem and a layer over it, as a container upper looks."""
    host = tmp_path / "host"
    for rel in ("gone", "changed", "hidden/old", "kept/old"):
        (host / rel).parent.mkdir(parents=True, exist_ok=True)
        (host / rel).write_text("host")
    layer = tmp_path / "layer"
    mirror = layer / str(host).lstrip("/")
    (mirror / "kept").mkdir(parents=True)
    (mirror / "hidden").mkdir()
    os.setxattr(mirror / "hidden", "trusted.overlay.opaque", b"y")  # rm -rf + mkdir
    (mirror / "hidden/new").write_text("layer")
    whiteout(mirror / "hidden/old")  # redundant under an opaque dir, as overlayfs leaves it
    (mirror / "changed").write_text("layer")
    (mirror / "kept/new").write_text("layer")
    (mirror / "model.bin").write_bytes(b"w" * 4096)
    whiteout(mirror / "gone")
    return host, layer


def view(root: Path, host: Path) -> dict[str, str]:
    seen = root / str(host).lstrip("/")
    return {str(p.relative_to(seen)): p.read_text()[:5]
            for p in sorted(seen.rglob("*")) if p.is_file()}


def test_a_layer_shows_files_whiteouts_and_opaque_dirs_from_disk(
    cache: LayerCache, run_dir: Path, tmp_path: Path
) -> None:
    host, layer = make_layer(tmp_path)
    mounted = cache.acquire(layer)
    dirs = ContainerDirs(run_dir, new_container_id())
    try:
        dirs.mount_root([mounted])  # lower: the layer, then the host root
        assert view(dirs.root, host) == {
            "changed": "layer", "hidden/new": "layer", "kept/new": "layer",
            "kept/old": "host", "model.bin": "wwwww",
        }  # fmt: skip
    finally:
        dirs.remove()
        cache.release(mounted)
    assert (cache.dir / f"{mounted.name}.ext4").is_file()  # on disk, not in the run dir's RAM
    assert os.statvfs(cache.mounts).f_bfree == os.statvfs(cache.mounts).f_blocks  # tmpfs empty
    assert stat.S_ISCHR(os.lstat(layer / str(host).lstrip("/") / "gone").st_mode)  # source as was


def test_concurrent_first_users_share_one_mount(cache: LayerCache, tmp_path: Path) -> None:
    _, layer = make_layer(tmp_path)
    start = threading.Barrier(8)

    def acquire(_: int) -> Path:
        start.wait()
        return cache.acquire(layer)

    with ThreadPoolExecutor(8) as pool:
        mounted = set(pool.map(acquire, range(8)))
    assert len(mounted) == 1
    target = mounted.pop()
    assert Path("/proc/self/mountinfo").read_text().count(f" {target} ") == 1
    for _ in range(8):
        cache.release(target)
    assert os.path.ismount(target)  # kept for the next container
    cache.forget(layer)
    assert not target.exists() and not (cache.dir / target.name).exists()


def test_a_deleted_source_serves_its_users_until_the_last_one_leaves(
    cache: LayerCache, tmp_path: Path
) -> None:
    host, layer = make_layer(tmp_path)
    mounted = cache.acquire(layer)
    shutil.rmtree(layer)  # what deleting a snapshot does
    cache.prune()
    assert (mounted / str(host).lstrip("/") / "kept/new").read_text() == "layer"
    cache.release(mounted)
    assert not os.path.ismount(mounted)
    assert not list(cache.dir.iterdir())


def test_a_new_cache_clears_what_a_crashed_server_left(
    run_dir: Path, tmp_path: Path
) -> None:
    host, layer = make_layer(tmp_path)
    crashed = LayerCache(run_dir, tmp_path / "images")
    mounted = crashed.acquire(layer)  # and never released: the server died
    (crashed.dir / f"._build-{mounted.name}-0000.ext4").write_bytes(b"half an image")
    (crashed.dir / "fedcba9876543210fedc").mkdir()  # hard links an earlier version kept
    old_copy = crashed.mounts / "0123456789abcdef0123"  # a layer copy of older versions
    old_copy.mkdir()
    (crashed.mounts / f"{old_copy.name}.source").write_text(str(layer))

    fresh = LayerCache(run_dir, tmp_path / "images")
    try:
        assert not os.path.ismount(mounted) and not old_copy.exists()
        assert sorted(p.name for p in fresh.dir.iterdir()) == [
            f"{mounted.name}.ext4", f"{mounted.name}.source"]
        again = fresh.acquire(layer)  # the image is reused, mounted anew
        assert again == mounted and os.path.ismount(again)
        assert (again / str(host).lstrip("/") / "changed").read_text() == "layer"
        fresh.release(again)
    finally:
        fresh.close()
    assert not os.path.ismount(mounted)
