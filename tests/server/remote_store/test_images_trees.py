"""Image trees through a real S3 store (SeaweedFS), without servers: what a layer dir
holds comes back as it was, and a record's paths move to this host's dirs."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coldsnap.server.remote_store.bucket import Bucket, StoreUrl
from coldsnap.server.remote_store.manifest import Manifest, StoredFile
from coldsnap.server.remote_store.packs import PackIndex
from coldsnap.server.remote_store.trees import fetch_trees, store_trees
from tests.server.remote_store.seaweed import Seaweed, new_prefix


@pytest.fixture
def bucket(seaweed: Seaweed, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    env = seaweed.env(new_prefix())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Bucket(StoreUrl.parse(env["COLDSNAP_STORE_URL"]))


def make_layer(root: Path) -> None:
    """What an overlay upper dir of a build holds: files, modes, owners, a symlink,
    a whiteout (a 0/0 character device) and an opaque dir's xattr."""
    (root / "usr/lib/pkg").mkdir(parents=True)
    (root / "usr/lib/pkg/module.py").write_text("VALUE = 1\n" * 5000)
    (root / "usr/bin").mkdir()
    tool = root / "usr/bin/tool"
    tool.write_bytes(os.urandom(100_000))
    tool.chmod(0o4755)
    os.chown(root / "usr/lib/pkg/module.py", 1234, 5678)
    (root / "usr/bin/link").symlink_to("tool")
    os.mknod(root / "usr/removed", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (root / "opaque").mkdir()
    os.setxattr(root / "opaque", "trusted.overlay.opaque", b"y")


def test_trees_come_back_with_owners_modes_links_whiteouts_and_xattrs(
        bucket: Bucket, tmp_path: Path) -> None:
    layer = tmp_path / "built" / "layer-abc"
    layer.mkdir(parents=True)
    make_layer(layer)
    (tmp_path / "scratch").mkdir()
    with ThreadPoolExecutor(4) as pool:
        files, locations = store_trees(bucket, {"layer-abc": layer}, pool, 4, PackIndex(),
                                       tmp_path / "scratch")
        manifest = Manifest.from_json(Manifest("k", "", files, {}, locations).to_json())
        into = tmp_path / "fetched"
        into.mkdir()
        read = fetch_trees(bucket, manifest, into, pool)
    assert read > 0 and [f.name for f in files] == ["layer-abc.tar"]
    got = into / "layer-abc"
    assert (got / "usr/lib/pkg/module.py").read_text() == "VALUE = 1\n" * 5000
    assert (got / "usr/bin/tool").read_bytes() == (layer / "usr/bin/tool").read_bytes()
    assert stat.S_IMODE((got / "usr/bin/tool").stat().st_mode) == 0o4755
    module = (got / "usr/lib/pkg/module.py").stat()
    assert (module.st_uid, module.st_gid) == (1234, 5678)
    assert os.readlink(got / "usr/bin/link") == "tool"
    removed = (got / "usr/removed").lstat()
    assert stat.S_ISCHR(removed.st_mode) and removed.st_rdev == 0
    assert os.getxattr(got / "opaque", "trusted.overlay.opaque") == b"y"
    assert not list(into.glob("*.tar"))  # the streams are gone once unpacked

    # The same tree again stores no new chunk: the index knows them all.
    index = PackIndex()
    with ThreadPoolExecutor(2) as pool:
        before = bucket.list("packs/")
        store_trees(bucket, {"again": layer}, pool, 2, index, tmp_path / "scratch")
    assert bucket.list("packs/") == before


def test_a_manifest_naming_a_path_outside_its_trees_is_refused(
        bucket: Bucket, tmp_path: Path) -> None:
    for name in ("../escape.tar", ".hidden.tar", "plain"):
        evil = Manifest("k", "", (StoredFile(name, 0, ()),), {}, {})
        with pytest.raises(ValueError, match="outside its trees"):
            fetch_trees(bucket, evil, tmp_path, ThreadPoolExecutor(1))
    assert not list(tmp_path.iterdir())  # nothing written
