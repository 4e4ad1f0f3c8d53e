"""What the shared store holds, and where in the bucket.

Layout under ``COLDSNAP_STORE_URL`` (``s3://BUCKET/PREFIX``)::

    packs/<blake3 hex>                     chunks, zstd-compressed, back to back (packs.py)
    packs/<blake3 hex>.idx                 that pack's chunks: hash, offset, length
    snapshots/<host key>/<key>.json        a snapshot's manifest (written last)

A manifest lists a snapshot's files (CRIU's image files, and its filesystem
layer packed as one tar stream) with their sizes and chunk lists, where each
chunk lies (pack, offset, length), which chunks are stored as deltas against
others (deltas.py) and the chunks those need, and carries the local store's
metadata (digests of every image file included). A snapshot is in the store once its
manifest is: the packs go first, so a reader never finds a manifest whose chunks
are not all there yet.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

FORMAT = 3  # 1 stored each chunk as an object of its own; 2 had no delta chunks
READS = frozenset({2, 3})  # the formats this version reads
MAX_CHAIN = 3  # deltas of deltas of deltas at most: a fetch rebuilds a chunk in few steps
FS_TAR = "fs.tar"  # the snapshot's filesystem layer, packed (fs_tar.py)


def manifest_name(host_key: str, key: str) -> str:
    return f"snapshots/{host_key}/{key}.json"


@dataclasses.dataclass(frozen=True)
class Location:
    """Where a chunk's stored (compressed) bytes lie: in ``pack``, from ``offset``."""

    pack: str
    offset: int
    length: int


@dataclasses.dataclass(frozen=True)
class ChunkRef:
    """One chunk of a file: its hash (the chunk's name in the store) and its size."""

    digest: str
    size: int


@dataclasses.dataclass(frozen=True)
class Delta:
    """How a chunk stored as a delta is rebuilt: against ``length`` bytes of ``base``'s
    chunks (of an older snapshot) joined in order, from byte ``skip`` of them on."""

    base: tuple[ChunkRef, ...]
    skip: int
    length: int

    def to_json(self) -> list[Any]:
        return [[[ref.digest, ref.size] for ref in self.base], self.skip, self.length]

    @classmethod
    def from_json(cls, data: Any) -> Delta:
        base, skip, length = data
        return cls(tuple(ChunkRef(str(d), int(n)) for d, n in base), int(skip), int(length))


@dataclasses.dataclass(frozen=True)
class StoredFile:
    """A file of the snapshot (``images/<name>`` or ``fs.tar``) as a list of chunks."""

    name: str
    size: int
    chunks: tuple[ChunkRef, ...]

    def offsets(self) -> list[tuple[ChunkRef, int]]:
        """Each chunk with where it starts in the file."""
        out, offset = [], 0
        for ref in self.chunks:
            out.append((ref, offset))
            offset += ref.size
        return out


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A snapshot in the store: its key and host key, files, where each chunk lies,
    and local metadata."""

    key: str
    host_key: str
    files: tuple[StoredFile, ...]
    meta: dict[str, Any]
    locations: dict[str, Location]
    # The chunks stored as deltas: those of the files, and the bases they need.
    deltas: dict[str, Delta] = dataclasses.field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def digests(self) -> set[str]:
        """The chunks of the files, and those their deltas are rebuilt from."""
        bases = {ref.digest for delta in self.deltas.values() for ref in delta.base}
        return {ref.digest for f in self.files for ref in f.chunks} | bases

    def to_json(self) -> bytes:
        """The manifest as stored: JSON, zstd-compressed. Every chunk is named once, in
        ``chunks`` (digest, size, pack, offset, length); files and deltas number them:
        a snapshot of tens of thousands of chunks, many of them deltas, names each
        digest once instead of up to five times."""
        packs = sorted({loc.pack for loc in self.locations.values()})
        pack_number = {pack: i for i, pack in enumerate(packs)}
        sizes = {ref.digest: ref.size for f in self.files for ref in f.chunks}
        sizes.update((ref.digest, ref.size) for d in self.deltas.values() for ref in d.base)
        digests = sorted(self.locations)
        number = {digest: i for i, digest in enumerate(digests)}
        data = {
            "format": FORMAT, "key": self.key, "host_key": self.host_key, "meta": self.meta,
            "packs": packs,
            "chunks": [[d, sizes.get(d, 0), pack_number[self.locations[d].pack],
                        self.locations[d].offset, self.locations[d].length] for d in digests],
            "files": [{"name": f.name, "size": f.size,
                       "chunks": [number[ref.digest] for ref in f.chunks]} for f in self.files],
            "deltas": [[number[d], [number[ref.digest] for ref in delta.base], delta.skip,
                        delta.length] for d, delta in sorted(self.deltas.items())],
        }
        return _compress(json.dumps(data, sort_keys=True).encode())

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """ValueError when ``raw`` is not a manifest this version reads."""
        try:
            data = json.loads(raw if raw[:1] == b"{" else _decompress(raw))
            if data.get("format") not in READS:
                raise ValueError(f"manifest format {data.get('format')!r}, not one of "
                                 f"{sorted(READS)}")
            read = _read_format_2 if data["format"] == 2 else _read_format_3
            manifest = cls(str(data["key"]), str(data["host_key"]), *read(data))
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"not a coldsnap snapshot manifest: {exc!r}") from None
        missing = manifest.digests() - manifest.locations.keys()
        if missing:
            raise ValueError(f"manifest of {manifest.key} does not say where {len(missing)} "
                             "of its chunks lie")
        if max(chain_lengths(manifest.deltas).values(), default=0) > MAX_CHAIN:
            raise ValueError(f"manifest of {manifest.key} has deltas of deltas deeper than "
                             f"{MAX_CHAIN}")
        return manifest


def chain_lengths(deltas: dict[str, Delta]) -> dict[str, int]:
    """How many deltas deep each chunk of ``deltas`` is (a delta against plain chunks: 1).
    ValueError when a chunk is rebuilt from itself, through any number of steps."""
    lengths: dict[str, int] = {}

    def length(digest: str, path: frozenset[str]) -> int:
        if digest not in deltas:
            return 0
        if digest in path or len(path) > MAX_CHAIN:  # a loop, or too deep to follow
            raise ValueError(f"chunk {digest} is a delta against itself, or deeper than "
                             f"{MAX_CHAIN}")
        if digest not in lengths:
            lengths[digest] = 1 + max((length(ref.digest, path | {digest})
                                       for ref in deltas[digest].base), default=0)
        return lengths[digest]

    for digest in deltas:
        length(digest, frozenset())
    return lengths


_Parts = tuple[tuple[StoredFile, ...], dict[str, Any], dict[str, Location], dict[str, Delta]]


def _read_format_3(data: dict[str, Any]) -> _Parts:
    packs = [str(name) for name in data["packs"]]
    table = [(str(d), int(size), Location(packs[pack], int(offset), int(length)))
             for d, size, pack, offset, length in data["chunks"]]
    refs = [ChunkRef(digest, size) for digest, size, _ in table]
    files = tuple(StoredFile(str(f["name"]), int(f["size"]),
                             tuple(refs[i] for i in f["chunks"])) for f in data["files"])
    deltas = {refs[i].digest: Delta(tuple(refs[j] for j in base), int(skip), int(length))
              for i, base, skip, length in data["deltas"]}
    return files, dict(data["meta"]), {d: loc for d, _, loc in table}, deltas


def _read_format_2(data: dict[str, Any]) -> _Parts:
    """The format before delta chunks (every chunk's digest in each place it is used)."""
    files = tuple(StoredFile(str(f["name"]), int(f["size"]),
                             tuple(ChunkRef(str(d), int(n)) for d, n in f["chunks"]))
                  for f in data["files"])
    packs = [str(name) for name in data["packs"]]
    where = {str(d): Location(packs[i], int(off), int(n))
             for d, (i, off, n) in data["where"].items()}
    return files, dict(data["meta"]), where, {}


def _compress(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=9).compress(data)


def _decompress(raw: bytes) -> bytes:
    import zstandard

    try:
        return zstandard.ZstdDecompressor().decompress(raw)
    except zstandard.ZstdError as exc:
        raise ValueError(f"not a coldsnap snapshot manifest: {exc}") from None
