"""Chunks, manifests, the store's URL and the layout setting: pure logic."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from coldsnap.server.remote_store.bucket import StoreUrl
from coldsnap.server.remote_store.chunks import (
    CorruptChunk,
    compress,
    decompress,
    split_file,
)
from coldsnap.server.remote_store.layout import fixed_layout, hash_seed_env, layout_secret
from coldsnap.server.remote_store.manifest import ChunkRef, Location, Manifest, StoredFile
from coldsnap.server.remote_store.packs import plan_spans
from coldsnap.settings import Settings


def test_chunks_cover_the_file_and_an_insertion_changes_few_of_them(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(2 * 1024 * 1024)
    (tmp_path / "a").write_bytes(data)
    (tmp_path / "b").write_bytes(data[:1_000_000] + b"one more line\n" + data[1_000_000:])
    a, b = list(split_file(tmp_path / "a")), list(split_file(tmp_path / "b"))
    assert b"".join(p.data for p in a) == data
    assert [p.offset for p in a] == [sum(len(q.data) for q in a[:i]) for i in range(len(a))]
    new = [p for p in b if p.digest not in {q.digest for q in a}]
    assert len(a) > 50 and 1 <= len(new) <= 3, (len(a), len(new))
    assert list(split_file(Path(os.devnull))) == []


def test_a_chunk_whose_bytes_differ_from_its_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"hello" * 100)
    [piece] = split_file(tmp_path / "f")
    blob = compress(piece.data)
    assert decompress(blob, piece.digest, len(piece.data)) == piece.data
    with pytest.raises(CorruptChunk, match="holds other bytes than its hash names"):
        decompress(compress(b"jello" * 100), piece.digest, len(piece.data))
    with pytest.raises(CorruptChunk, match="does not decompress"):
        decompress(b"not zstd", piece.digest, len(piece.data))


def test_a_manifest_round_trips_and_a_foreign_one_is_refused() -> None:
    files = (StoredFile("images/pages-1.img", 30, (ChunkRef("ab", 10), ChunkRef("cd", 20))),)
    where = {"ab": Location("packs/p1", 0, 7), "cd": Location("packs/p2", 40, 9)}
    manifest = Manifest("k-1", "host", files, {"digests": {"pages-1.img": "sha256:00"}}, where)
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest and again.size_bytes == 30
    assert [offset for _, offset in again.files[0].offsets()] == [0, 10]
    with pytest.raises(ValueError, match="format"):
        Manifest.from_json(b'{"format": 99}')
    with pytest.raises(ValueError, match=r"manifest format 1, not one of \[2, 3\]"):
        Manifest.from_json(b'{"format": 1}')  # one chunk, one object
    with pytest.raises(ValueError, match="not a coldsnap snapshot manifest"):
        Manifest.from_json(b'{"format": 2}')
    with pytest.raises(ValueError, match="not a coldsnap snapshot manifest"):
        Manifest.from_json(b"\x28\xb5\x2f\xfd not zstd after all")
    lost = (b'{"format": 2, "key": "k-1", "host_key": "host", "meta": {}, "packs": ["packs/p1"],'
            b' "where": {"ab": [0, 0, 7]}, "files": [{"name": "images/pages-1.img", '
            b'"size": 30, "chunks": [["ab", 10], ["cd", 20]]}]}')
    with pytest.raises(ValueError, match="manifest of k-1 does not say where 1 of its chunks"):
        Manifest.from_json(lost)


def test_neighbouring_chunks_of_a_pack_are_read_together() -> None:
    def at(pack: str, offset: int, length: int = 100) -> Location:
        return Location(pack, offset, length)

    wanted = [("c", at("p", 200)), ("a", at("p", 0)), ("b", at("p", 100)),  # one run
              ("far", at("p", 10_000)),  # past the gap: a read of its own
              ("q", at("q", 0)),  # another pack
              ("big", at("r", 0, 5000)), ("next", at("r", 5000))]  # over the longest read
    spans = plan_spans(wanted, gap=1000, most=4000)
    got = sorted((s.pack, s.start, s.end, [d for d, _ in s.chunks]) for s in spans)
    assert got == [("p", 0, 300, ["a", "b", "c"]), ("p", 10_000, 10_100, ["far"]),
                   ("q", 0, 100, ["q"]), ("r", 0, 5000, ["big"]),
                   ("r", 5000, 5100, ["next"])]
    assert plan_spans([]) == []


def test_the_store_url_names_a_bucket_and_a_prefix() -> None:
    url = StoreUrl.parse("s3://snaps/fleet/a/")
    assert (url.bucket, url.prefix, url.key("chunks/x")) == ("snaps", "fleet/a", "fleet/a/chunks/x")
    assert str(url) == "s3://snaps/fleet/a" and StoreUrl.parse("s3://snaps").key("m") == "m"
    with pytest.raises(ValueError, match=r"COLDSNAP_STORE_URL='http://x' is not an S3 URL: "
                                         r"use s3://BUCKET or s3://BUCKET/PREFIX"):
        StoreUrl.parse("http://x")


def test_the_layout_is_fixed_with_a_store_unless_set_to_random() -> None:
    assert not fixed_layout(Settings())
    assert fixed_layout(Settings(store_url="s3://b"))
    assert not fixed_layout(Settings(store_url="s3://b", snapshot_layout="random"))
    assert fixed_layout(Settings(snapshot_layout="fixed"))
    with pytest.raises(ValueError, match="COLDSNAP_SNAPSHOT_LAYOUT='same' is not one of auto, "
                                         "fixed, random"):
        fixed_layout(Settings(snapshot_layout="same"))
    seed = hash_seed_env("app", "f", "s1")["PYTHONHASHSEED"]
    assert seed == hash_seed_env("app", "f", "s1")["PYTHONHASHSEED"]
    assert seed != hash_seed_env("app", "g", "s1")["PYTHONHASHSEED"]
    assert seed != hash_seed_env("app", "f", "s2")["PYTHONHASHSEED"]  # names alone: not enough
    assert 0 <= int(seed) < 2**32


def test_the_layout_secret_comes_from_the_store_and_is_kept_for_when_it_is_down(
        tmp_path: Path) -> None:
    asked: list[int] = []

    def shared() -> str:
        asked.append(1)
        return "from-the-store"

    def down() -> str:
        raise OSError("connection refused")

    assert layout_secret(tmp_path, shared) == "from-the-store"
    assert layout_secret(tmp_path, shared) == "from-the-store" and len(asked) == 2  # checked
    assert layout_secret(tmp_path, down) == "from-the-store"  # kept
    assert (tmp_path / "layout-secret").stat().st_mode & 0o777 == 0o600


def test_without_a_reachable_store_a_host_makes_its_own_layout_secret(tmp_path: Path) -> None:
    def down() -> str:
        raise OSError("connection refused")

    host_a, host_b = tmp_path / "a", tmp_path / "b"
    host_a.mkdir()
    host_b.mkdir()
    first = layout_secret(host_a, down)
    assert len(first) == 32 and layout_secret(host_a, None) == first
    assert layout_secret(host_b, None) != first
