"""A restore hashes an image file again only when it may have changed since it last
matched: an unchanged stamp skips it, any write (even with its mtime put back) doesn't."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coldsnap.engine import digests
from coldsnap.engine.digests import VerifiedFiles, check_digests, digest_files


@pytest.fixture
def images(tmp_path: Path) -> Path:
    (tmp_path / "pages-1.img").write_bytes(b"\x00" * 65536)
    (tmp_path / "core-1.img").write_bytes(b"core")
    return tmp_path


def _hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = digests.file_digest

    def counting(path: Path, stop: object = None) -> str:
        seen.append(path.name)
        return real(path)

    monkeypatch.setattr(digests, "file_digest", counting)
    return seen


def test_a_file_that_matched_is_not_hashed_again_until_it_is_written(
    images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = digest_files(images)
    verified = VerifiedFiles()
    hashed = _hashed(monkeypatch)
    assert check_digests(images, recorded, verified=verified) is None
    assert sorted(hashed) == ["core-1.img", "pages-1.img"]
    hashed.clear()
    assert check_digests(images, recorded, verified=verified) is None
    assert hashed == []  # both unchanged: stats only

    pages = images / "pages-1.img"
    before = pages.stat()
    with pages.open("r+b") as f:  # one page flipped in place, size unchanged
        f.seek(4096)
        f.write(b"\xff" * 4096)
    os.utime(pages, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back
    damage = check_digests(images, recorded, verified=verified)
    assert damage is not None and damage.file == "pages-1.img"
    assert hashed == ["pages-1.img"]  # its ctime moved: hashed again, and caught


def test_without_a_memory_every_check_hashes_everything(
    images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = digest_files(images)
    hashed = _hashed(monkeypatch)
    for _ in range(2):  # `coldsnap snapshots verify`: no shortcut
        assert check_digests(images, recorded) is None
    assert len(hashed) == 4
