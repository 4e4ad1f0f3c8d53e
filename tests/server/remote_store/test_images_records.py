"""Pure logic of images in the store: a record's paths move to this host's dirs, and
which image a missing file of a container belongs to."""

from __future__ import annotations

from pathlib import Path

from coldsnap.server.images.from_store import _image_part
from coldsnap.server.remote_store.images import _moved

KEY = "ab" * 32


def test_paths_under_the_building_hosts_dirs_move_to_this_hosts() -> None:
    moves = [("/a/images", "/b/images"), ("/a/bases", "/var/cache/coldsnap/bases")]
    assert _moved(f"/a/images/{KEY}/venv/bin/python", moves) == \
        f"/b/images/{KEY}/venv/bin/python"
    assert _moved("/a/bases/debian-bookworm-1/rootfs", moves) == \
        "/var/cache/coldsnap/bases/debian-bookworm-1/rootfs"
    assert _moved("/a/images-other/x", moves) == "/a/images-other/x"  # a prefix, not a dir
    assert _moved("/usr/bin/python3", moves) == "/usr/bin/python3"  # the host's own
    assert _moved("", moves) == ""


def test_a_missing_file_names_its_image_key_or_the_runtime(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "present").mkdir(parents=True)
    assert _image_part(images / KEY / "layers" / "00-files", images) == KEY
    assert _image_part(images / "runtime" / "0123abcd", images) == "runtime"
    assert _image_part(images / "present", images) == ""  # there: nothing to fetch
    assert _image_part(images / "not-a-key" / "x", images) == ""
    assert _image_part(tmp_path / "elsewhere" / KEY, images) == ""
    assert _image_part(images, images) == ""
