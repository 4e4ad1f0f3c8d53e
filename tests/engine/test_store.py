"""The snapshot store's own rules, on a temp dir: keys name directories, nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from coldsnap.engine.store import SnapshotStore


def _published(store: SnapshotStore, key: str) -> None:
    staging = store.staging_dir(key)
    (staging / "images").mkdir()
    (staging / "images" / "pages-1.img").write_bytes(b"x" * 10)
    (staging / "fs").mkdir()
    store.publish(staging, key, {"labels": {"app": "a", "function": "f"}})


@pytest.mark.parametrize("key", ["", ".", "..", "../../../x", "a/b", "failed", "-x", "a\nb", "k\n"])
def test_a_key_that_is_not_a_name_touches_nothing(tmp_path: Path, key: str) -> None:
    store = SnapshotStore(tmp_path / "store", "host")
    _published(store, "0123abcd-Model")
    decoy = tmp_path / "x.json"
    decoy.write_text(json.dumps({"reason": "not a store file"}))
    with pytest.raises(ValueError, match="is not a snapshot key"):
        store.delete(key)
    with pytest.raises(ValueError, match="is not a snapshot key"):
        store.mark_failed(key, "no")
    assert store.get(key) is None and store.inspect(key) is None
    assert store.failure(key) is None
    assert decoy.exists()
    assert [info.key for info in store.list()] == ["0123abcd-Model"]


def test_a_store_deleted_underneath_lists_as_empty(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "store", "host")
    _published(store, "k-f")
    shutil.rmtree(store.root)
    assert store.list() == []
    _published(store, "k-f")  # and takes the next dump
    assert [info.key for info in store.list()] == ["k-f"]

