"""Delta chunks through a real S3 store (SeaweedFS): two versions of a snapshot whose
memory differs in a few words per page, uploaded one after the other, then fetched
with and without the first version's chunks in the host's cache, and damaged."""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coldsnap.engine.base import SnapshotInfo
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.remote_store.bucket import Bucket, StoreUrl
from coldsnap.server.remote_store.cache import ChunkCache
from coldsnap.server.remote_store.chunks import (
    SNAPSHOT_LEVEL,
    ZSTD_LEVEL,
    CorruptChunk,
    chunk_digest,
    compress,
    split_file,
)
from coldsnap.server.remote_store.fetch import Fetched, fetch_snapshot
from coldsnap.server.remote_store.local_chunks import LocalChunk
from coldsnap.server.remote_store.manifest import Manifest, manifest_name
from coldsnap.server.remote_store.packs import PackIndex, PackWriter
from coldsnap.server.remote_store.pagemap import PAGE
from coldsnap.server.remote_store.upload import upload_snapshot
from tests.server.remote_store.seaweed import Seaweed, new_prefix
from tests.server.remote_store.test_deltas import pagemap, shifted

HOST = "host-1"
LABELS = {"app": "delta-app", "function": "f"}
OLD_PAGES = [(0x10000, 40), (0x800000, 200)]
NEW_PAGES = [(0x10000, 43), (0x800000, 200)]  # three more pages: the rest move down


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


@pytest.fixture
def bucket(seaweed: Seaweed, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    env = seaweed.env(new_prefix())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Bucket(StoreUrl.parse(env["COLDSNAP_STORE_URL"]))


def make_snapshot(store: SnapshotStore, key: str, pages: bytes,
                  runs: list[tuple[int, int]]) -> SnapshotInfo:
    staging = store.staging_dir(key)
    (staging / "images").mkdir()
    (staging / "fs").mkdir()
    (staging / "images" / "pages-2.img").write_bytes(pages)
    pagemap(staging / "images" / "pagemap-2.img", 2, runs)
    (staging / "images" / "core-1.img").write_bytes(key.encode() * 100)
    return store.publish(staging, key, {"labels": {**LABELS, "version": key}})


def two_versions(root: Path) -> tuple[SnapshotInfo, SnapshotInfo]:
    """v1, and v2: three more pages early in the file, a few words changed in every page."""
    rng = random.Random(11)
    memory = rng.randbytes(240 * PAGE)  # incompressible alone: only a delta is small
    store = SnapshotStore(root, HOST)
    v1 = make_snapshot(store, "v1", memory, OLD_PAGES)
    time.sleep(0.01)  # v2 is the newer one
    v2 = make_snapshot(store, "v2", memory[:40 * PAGE] + rng.randbytes(3 * PAGE)
                       + shifted(memory[40 * PAGE:], rng), NEW_PAGES)
    return v1, v2


def fetch(bucket: Bucket, root: Path, cache: ChunkCache, pool: ThreadPoolExecutor,
          key: str) -> Fetched:
    raw = bucket.get(manifest_name(HOST, key))
    assert raw is not None
    return fetch_snapshot(bucket, cache, SnapshotStore(root, HOST), Manifest.from_json(raw),
                          pool)


def same_images(a: Path, b: Path) -> bool:
    return all((b / "images" / p.name).read_bytes() == p.read_bytes()
               for p in (a / "images").iterdir() if p.name.endswith(".img"))


def test_a_changed_version_stores_a_small_delta_and_a_fetch_rebuilds_it_with_or_without_cache(
        bucket: Bucket, seaweed: Seaweed, pool: ThreadPoolExecutor, tmp_path: Path) -> None:
    v1, v2 = two_versions(tmp_path / "a")
    index = PackIndex()
    first = upload_snapshot(bucket, v1.path, pool, 4, index)
    second = upload_snapshot(bucket, v2.path, pool, 4, index)
    assert first is not None and second is not None
    assert first.delta_chunks == 0 and second.delta_chunks > 0.8 * second.new_chunks, second
    # Stored alone, nearly every byte of v2 would be new; as deltas, a few percent.
    assert second.new_bytes < 0.1 * v2.size_bytes, (second, v2.size_bytes)
    manifest = Manifest.from_json(bucket.get(manifest_name(HOST, "v2")) or b"")
    assert len(manifest.deltas) == second.delta_chunks

    cold = fetch(bucket, tmp_path / "b", ChunkCache(tmp_path / "b-cache", 0), pool, "v2")
    assert cold.info is not None and same_images(v2.path, cold.info.path)
    assert cold.store_bytes > first.new_bytes  # v1's chunks came too: the bases

    cache = ChunkCache(tmp_path / "c-cache", 1 << 30)
    fetch(bucket, tmp_path / "c", cache, pool, "v1")
    deadline = time.monotonic() + 30  # the cache is filled in the background
    while cache.size_bytes < first.new_bytes * 0.9 and time.monotonic() < deadline:
        time.sleep(0.05)
    warm = fetch(bucket, tmp_path / "c2", cache, pool, "v2")
    assert warm.info is not None and same_images(v2.path, warm.info.path)
    assert warm.store_bytes < 0.2 * cold.store_bytes, (warm.describe(), cold.describe())


def test_a_host_holding_the_old_version_takes_the_bases_from_its_local_store(
        bucket: Bucket, pool: ThreadPoolExecutor, tmp_path: Path) -> None:
    v1, v2 = two_versions(tmp_path / "a")  # as on the host that made v1 and no cache
    index = PackIndex()
    upload_snapshot(bucket, v1.path, pool, 4, index)
    upload_snapshot(bucket, v2.path, pool, 4, index)
    none = ChunkCache(tmp_path / "no-cache", 0)
    cold = fetch(bucket, tmp_path / "b", none, pool, "v2")
    b_v1 = tmp_path / "b" / HOST / "v1"
    shutil.copytree(v1.path, b_v1)  # b now holds v1, as the host that made it would

    (tmp_path / "b" / HOST / "v2").rename(tmp_path / "b-v2")  # b fetches v2 again
    local = fetch(bucket, tmp_path / "b", none, pool, "v2")
    assert local.info is not None and same_images(v2.path, local.info.path)
    assert local.local_chunks > 0 and "from an older version on this host" in local.describe()
    assert local.store_bytes < 0.2 * cold.store_bytes, (local.describe(), cold.describe())

    shutil.rmtree(local.info.path)
    pages = b_v1 / "images" / "pages-2.img"
    data = pages.read_bytes()
    pages.write_bytes(bytes(len(data)))  # the local copy is damaged: the store's is used
    again = fetch(bucket, tmp_path / "b", none, pool, "v2")
    assert again.info is not None and same_images(v2.path, again.info.path)
    assert again.store_bytes > 0.8 * cold.store_bytes, again.describe()

    where = LocalChunk(pages, 0, PAGE)  # and if it changes after it was cut into chunks
    with pytest.raises(OSError, match="changed since it was read"):
        where.read(chunk_digest(data[:PAGE]))


def test_a_writer_that_lists_no_deltas_writes_a_chunk_held_as_a_delta_anew(
        bucket: Bucket, pool: ThreadPoolExecutor, tmp_path: Path) -> None:
    v1, v2 = two_versions(tmp_path / "a")
    index = PackIndex()
    upload_snapshot(bucket, v1.path, pool, 4, index)
    upload_snapshot(bucket, v2.path, pool, 4, index)
    piece = next(p for p in split_file(v2.path / "images" / "pages-2.img")
                 if index.delta(p.digest) is not None)

    aware = PackWriter(bucket, pool, index, 4, deltas=True)  # a snapshot's upload
    aware.add(piece.digest, piece.data)
    aware.finish()
    assert aware.new_chunks == 0 and piece.digest in aware.deltas
    assert all(ref.digest in aware.locations for ref in aware.deltas[piece.digest].base)

    plain = PackWriter(bucket, pool, index, 4)  # e.g. an image's files: plain chunks only
    plain.add(piece.digest, piece.data)
    plain.finish()
    assert plain.new_chunks == 1 and not plain.deltas


def corrupt(seaweed: Seaweed, bucket: Bucket, pack: str, offset: int, length: int) -> None:
    key = bucket.url.key(pack)
    data = seaweed.get(key)
    end = offset + length
    seaweed.put(key, data[:end - 8] + bytes(8) + data[end:])


@pytest.mark.parametrize("damaged", ["delta", "base"])
def test_a_damaged_delta_or_base_is_a_corrupt_chunk_of_its_pack(
        damaged: str, bucket: Bucket, seaweed: Seaweed, pool: ThreadPoolExecutor,
        tmp_path: Path) -> None:
    v1, v2 = two_versions(tmp_path / "a")
    index = PackIndex()
    upload_snapshot(bucket, v1.path, pool, 4, index)
    upload_snapshot(bucket, v2.path, pool, 4, index)
    manifest = Manifest.from_json(bucket.get(manifest_name(HOST, "v2")) or b"")
    digest, delta = sorted(manifest.deltas.items())[len(manifest.deltas) // 2]
    if damaged == "base":
        digest = delta.base[0].digest
    where = manifest.locations[digest]
    corrupt(seaweed, bucket, where.pack, where.offset, where.length)

    with pytest.raises(CorruptChunk) as caught:
        fetch(bucket, tmp_path / "b", ChunkCache(tmp_path / "b-cache", 0), pool, "v2")
    assert caught.value.digest == digest and caught.value.pack == where.pack, caught.value
    assert not list((tmp_path / "b" / HOST).glob("v2"))  # nothing published


def test_a_snapshots_plain_chunks_are_stored_at_the_snapshot_level_an_images_at_the_fast_one(
        bucket: Bucket, pool: ThreadPoolExecutor, tmp_path: Path) -> None:
    text = b"".join(b"%d: a page of a heap, pointers and names\n" % i for i in range(2000))
    v1 = make_snapshot(SnapshotStore(tmp_path / "a", HOST), "v1", text, [(0x10000, 20)])
    index = PackIndex()
    upload_snapshot(bucket, v1.path, pool, 4, index)
    manifest = Manifest.from_json(bucket.get(manifest_name(HOST, "v1")) or b"")
    piece = next(split_file(v1.path / "images" / "pages-2.img"))
    where = manifest.locations[piece.digest]
    stored = bucket.get_range(where.pack, where.offset, where.offset + where.length)
    fast, snapshot = compress(piece.data, ZSTD_LEVEL), compress(piece.data, SNAPSHOT_LEVEL)
    assert len(snapshot) < len(fast)  # else this test can't tell them apart
    assert stored == snapshot

    other = text.replace(b"heap", b"tree")  # a chunk the store lacks, as an image's file
    writer = PackWriter(bucket, pool, index, 4)
    writer.add(chunk_digest(other[:20000]), other[:20000])
    writer.finish()
    where = writer.locations[chunk_digest(other[:20000])]
    stored = bucket.get_range(where.pack, where.offset, where.offset + where.length)
    assert stored == compress(other[:20000], ZSTD_LEVEL)


def test_a_host_holding_the_last_version_fetches_no_bases_of_the_chunks_it_holds(
        bucket: Bucket, pool: ThreadPoolExecutor, tmp_path: Path) -> None:
    v1, v2 = two_versions(tmp_path / "a")  # v2's chunks are deltas against v1's in the store
    pages = (v2.path / "images" / "pages-2.img").read_bytes()
    time.sleep(0.01)
    v3 = make_snapshot(SnapshotStore(tmp_path / "a", HOST), "v3",
                       pages[:100 * PAGE] + bytes(PAGE) + pages[101 * PAGE:], NEW_PAGES)
    index = PackIndex()
    for version in (v1, v2):
        upload_snapshot(bucket, version.path, pool, 4, index)
    third = upload_snapshot(bucket, v3.path, pool, 4, index)  # one page changed
    assert third is not None

    b_v2 = tmp_path / "b" / HOST / "v2"
    shutil.copytree(v2.path, b_v2)  # b made or fetched v2; no chunk cache
    got = fetch(bucket, tmp_path / "b", ChunkCache(tmp_path / "b-cache", 0), pool, "v3")
    assert got.info is not None and same_images(v3.path, got.info.path)
    assert got.local_chunks > 0, got.describe()
    # What v3 added, with room for the reads' gaps; v1's chunks (the bases of v2's
    # deltas, which b holds as v2's bytes) would be ~1 MB.
    assert got.store_bytes < third.new_bytes + 256 * 1024, (got.describe(), third)
