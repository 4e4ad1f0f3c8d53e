"""What a fetch does with the host's memory: it frees the engine's warm reserve first
(its page cache and the restore after it land there) and holds Python's cycle
collector off while it runs. A real S3 store (SeaweedFS), a small made-up snapshot."""

from __future__ import annotations

import gc
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import coldsnap.server.remote_store as remote_store
from coldsnap.engine.store import SnapshotStore
from coldsnap.engine.warm_memory import BLOCK, WarmMemory
from coldsnap.server.remote_store import RemoteSnapshots
from coldsnap.server.remote_store.bucket import Bucket, StoreUrl
from coldsnap.server.remote_store.collector import collector_paused
from coldsnap.server.remote_store.packs import PackIndex
from coldsnap.server.remote_store.upload import upload_snapshot
from coldsnap.settings import Settings
from tests.server.remote_store.seaweed import Seaweed, new_prefix

HOST = "host-1"


def test_a_fetch_frees_the_warm_reserve_and_runs_without_the_collector(
        seaweed: Seaweed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = seaweed.env(new_prefix())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    made = SnapshotStore(tmp_path / "a", HOST)  # the host that made it
    staging = made.staging_dir("k1")
    (staging / "images").mkdir()
    (staging / "fs").mkdir()
    pages = random.Random(4).randbytes(1 << 20)
    (staging / "images" / "pages-1.img").write_bytes(pages)
    info = made.publish(staging, "k1", {"labels": {"app": "a", "function": "f"}})
    with ThreadPoolExecutor(4) as pool:
        bucket = Bucket(StoreUrl.parse(env["COLDSNAP_STORE_URL"]))
        upload_snapshot(bucket, info.path, pool, 4, PackIndex())

    collector_on: list[bool] = []
    real_fetch = remote_store.fetch_snapshot

    def fetch_snapshot(*args: Any) -> Any:
        collector_on.append(gc.isenabled())
        return real_fetch(*args)

    monkeypatch.setattr(remote_store, "fetch_snapshot", fetch_snapshot)
    memory = WarmMemory(2 * BLOCK >> 20)
    settings = Settings(state_dir=tmp_path / "b-state", store_url=env["COLDSNAP_STORE_URL"],
                        store_cache_mb=0)

    def free_warm_memory() -> None:  # as the criu engine's does
        memory.release()

    remote = RemoteSnapshots(settings, SnapshotStore(tmp_path / "b", HOST), free_warm_memory)
    try:
        deadline = time.monotonic() + 30
        while memory.held_bytes < 2 * BLOCK and time.monotonic() < deadline:
            time.sleep(0.02)
        assert memory.held_bytes == 2 * BLOCK
        assert gc.isenabled()
        fetched = remote.fetch("k1")
        assert fetched is not None and fetched.info is not None
        assert (fetched.info.path / "images" / "pages-1.img").read_bytes() == pages
        assert fetched.seconds > 0
        assert memory.held_bytes == 0  # freed for the fetch, taken back when a container ends
        assert collector_on == [False]
        assert gc.isenabled()  # on again afterwards
        assert remote.fetch("no-such-key") is None
    finally:
        remote.close()
        memory.close()


def test_the_collector_stays_off_until_the_last_overlapping_fetch_ends() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # another fetch meanwhile
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # someone else had it off: it stays off
    finally:
        gc.enable()
