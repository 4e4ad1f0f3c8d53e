"""Delta chunks, the manifest's third format and CRIU's pagemap: pure logic."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from coldsnap.server.remote_store.chunks import CorruptChunk, chunk_digest, compress
from coldsnap.server.remote_store.deltas import Rebuilder, decode, encode
from coldsnap.server.remote_store.manifest import (
    ChunkRef,
    Delta,
    Location,
    Manifest,
    StoredFile,
    chain_lengths,
)
from coldsnap.server.remote_store.pagemap import PAGE, offset_map, read_pagemap


def shifted(data: bytes, rng: random.Random, words: int = 8) -> bytes:
    """``data`` with a few 8-byte words changed in each page, as pointers of a process
    laid out a few bytes apart."""
    out = bytearray(data)
    for page in range(0, len(out), PAGE):
        for _ in range(words):
            at = page + rng.randrange(0, PAGE - 8, 8)
            out[at:at + 8] = (int.from_bytes(out[at:at + 8], "little") + 48 & (2**64 - 1)
                              ).to_bytes(8, "little")
    return bytes(out)


def test_a_chunk_differing_in_a_few_words_is_a_small_delta_and_only_its_base_rebuilds_it(
        ) -> None:
    rng = random.Random(5)
    old = rng.randbytes(64 * 1024)
    new = shifted(old[8192:24576], rng)
    blob = encode(new, old)
    assert len(blob) < len(compress(new)) / 10, (len(blob), len(compress(new)))
    assert decode(blob, old, chunk_digest(new), len(new)) == new
    with pytest.raises(CorruptChunk, match="holds other bytes than its hash names once "
                                           "rebuilt from its delta"):
        decode(blob, rng.randbytes(len(old)), chunk_digest(new), len(new))
    with pytest.raises(CorruptChunk, match="is a delta that does not decompress"):
        decode(b"\x28\xb5\x2f\xfd garbage", old, chunk_digest(new), len(new))


def test_a_rebuilder_needs_the_bases_first_and_says_when_one_did_not_arrive() -> None:
    rng = random.Random(6)
    base = [rng.randbytes(5000), rng.randbytes(7000)]
    refs = tuple(ChunkRef(chunk_digest(b), len(b)) for b in base)
    new = shifted(b"".join(base)[1000:11000], rng)
    delta = Delta(refs, 1000, 10_000)
    deeper = Delta((ChunkRef(chunk_digest(new), len(new)),), 0, len(new))
    rebuilder = Rebuilder({chunk_digest(new): delta, "d2": deeper})
    assert rebuilder.bases == {**{ref.digest: ref.size for ref in refs},
                               chunk_digest(new): len(new)}
    here = Location("packs/p", 0, 1)
    assert rebuilder.waves([("d2", here, b""), (chunk_digest(new), here, b"")]) == [
        [(chunk_digest(new), here, b"")], [("d2", here, b"")]]  # a delta after its base
    blob = encode(new, b"".join(base)[1000:11000])
    rebuilder.chunk(refs[0].digest, compress(base[0]), len(base[0]))  # from the store
    with pytest.raises(CorruptChunk, match="base chunks did not arrive"):
        rebuilder.chunk(chunk_digest(new), blob, len(new))
    rebuilder.keep(refs[1].digest, compress(base[1]))  # from the cache
    assert rebuilder.chunk(chunk_digest(new), blob, len(new)) == new


def test_a_manifest_with_deltas_round_trips_and_loops_or_deep_chains_are_refused() -> None:
    refs = [ChunkRef(f"{i:02x}" * 32, 100 + i) for i in range(6)]
    files = (StoredFile("images/pages-1.img", 203, (refs[0], refs[3])),)
    where = {ref.digest: Location(f"packs/p{i % 2}", 10 * i, 9) for i, ref in enumerate(refs)}
    deltas = {refs[3].digest: Delta((refs[1], refs[2]), 5, 150),
              refs[1].digest: Delta((refs[4],), 0, 104)}
    manifest = Manifest("k-1", "host", files, {"labels": {"app": "a"}}, where, deltas)
    raw = manifest.to_json()
    assert raw[:4] == b"\x28\xb5\x2f\xfd"  # compressed: ~40% of a snapshot's JSON
    assert Manifest.from_json(raw) == manifest
    assert chain_lengths(deltas) == {refs[3].digest: 2, refs[1].digest: 1}
    looped = {**deltas, refs[4].digest: Delta((refs[3],), 0, 10)}
    with pytest.raises(ValueError, match="is a delta against itself"):
        Manifest.from_json(Manifest("k-1", "host", files, {}, where, looped).to_json())
    deep = {refs[i].digest: Delta((refs[i + 1],), 0, 10) for i in range(5)}
    with pytest.raises(ValueError, match="deeper than 3"):
        Manifest.from_json(Manifest("k-1", "host", files, {}, where, deep).to_json())


def pagemap(path: Path, pages_id: int, runs: list[tuple[int, int]]) -> None:
    """A pagemap image as CRIU 4 writes one: magic, head, an entry per run of present
    pages (vaddr, pages)."""
    def varint(value: int) -> bytes:
        out = bytearray()
        while value >= 0x80:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        return bytes(out + bytes([value]))

    def entry(*fields: tuple[int, int]) -> bytes:
        message = b"".join(varint(number << 3) + varint(value) for number, value in fields)
        return struct.pack("<I", len(message)) + message

    body = b"".join(entry((1, vaddr), (2, 0), (4, 4), (5, pages)) for vaddr, pages in runs)
    path.write_bytes(b"\x19\x43\x56\x54\x25\x40\x08\x56" + entry((1, pages_id)) + body)


def test_a_page_maps_to_the_old_page_at_its_address_even_when_pages_before_it_moved(
        tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    pagemap(old / "pagemap-2.img", 2, [(0x10000, 4), (0x800000, 10)])
    pagemap(new / "pagemap-2.img", 2, [(0x10000, 6), (0x800000, 10)])  # two more pages
    assert read_pagemap(new / "pagemap-2.img") == (
        "pages-2.img", [0x10000 + i * PAGE for i in range(6)] +
        [0x800000 + i * PAGE for i in range(10)])
    where = offset_map(old, new)
    assert where("pages-2.img", 2 * PAGE + 7) == 2 * PAGE + 7  # same address, same offset
    assert where("pages-2.img", 5 * PAGE) is None  # no old page at that address
    assert where("pages-2.img", 6 * PAGE + 100) == 4 * PAGE + 100  # moved two pages down
    assert where("core-1.img", 123) == 123  # other files: the same offset
    (old / "pagemap-2.img").write_bytes(b"not a pagemap")
    assert offset_map(old, new)("pages-2.img", 6 * PAGE) == 6 * PAGE  # unknown: as is
