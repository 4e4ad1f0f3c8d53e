"""``Volume``: a directory on the server host that functions mount and share.

Example::

    vol = coldsnap.Volume.from_name("models", create_if_missing=True)

    @app.function(volumes={"/models": vol})
    def train() -> None:
        Path("/models/weights.bin").write_bytes(...)
        vol.commit()             # flushes to disk; other containers already see it

    with vol.batch_upload() as batch:           # from the client
        batch.put_file("config.json", "/config.json")
    for chunk in vol.read_file("/weights.bin"):  # bytes, in chunks
        ...

A ``Volume`` is a reference by name: it is looked up (or created, with
``create_if_missing=True``) when the app is deployed or a method is called.
docs/volumes-and-secrets.md says what is visible when.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from coldsnap.wire import ops
from coldsnap.wire.container import in_container
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.mounts import NAME_RULE, VolumeRef, is_object_name

if TYPE_CHECKING:
    from coldsnap.client import Client

READ_CHUNK_BYTES = 1 << 20  # read_file yields the file in pieces of this size
FILEOBJ_MODE = 0o644  # of a file put from a file-like object, without mode=


class FileEntryType(enum.IntEnum):
    """What a volume path is (Modal's values)."""

    UNSPECIFIED = 0
    FILE = 1
    DIRECTORY = 2
    SYMLINK = 3


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One entry of ``Volume.listdir``: its path in the volume, type, mtime and size."""

    path: str
    type: FileEntryType
    mtime: float
    size: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEntry:
        kind = {"file": FileEntryType.FILE, "directory": FileEntryType.DIRECTORY,
                "symlink": FileEntryType.SYMLINK}.get(data.get("type", ""),
                                                      FileEntryType.UNSPECIFIED)
        return cls(str(data["path"]).lstrip("/"), kind, float(data["mtime"]),
                   int(data["size"]))


def _client() -> Client:
    from coldsnap.client import Client

    return Client.default()


class Volume:
    """A named, persistent directory of the server; mount it with ``volumes=``."""

    def __init__(self, name: str, create_if_missing: bool = False) -> None:
        # Use Volume.from_name or Volume.ephemeral.
        self.name = name
        self.create_if_missing = create_if_missing

    @staticmethod
    def from_name(name: str, *, environment_name: str | None = None,
                  create_if_missing: bool = False, version: int | None = None) -> Volume:
        """The server's volume ``name``; with ``create_if_missing`` it is made when the
        app is deployed (or a method first needs it). ``environment_name`` and
        ``version`` are accepted for Modal's sake and ignored."""
        if not is_object_name(name):
            raise InvalidError(f"Volume.from_name({name!r}): a volume name is {NAME_RULE}.")
        return Volume(name, create_if_missing)

    @staticmethod
    @contextlib.contextmanager
    def ephemeral() -> Iterator[Volume]:
        """A volume that exists for the ``with`` block and is deleted at its end."""
        volume = Volume(f"ephemeral-{uuid.uuid4().hex[:12]}")
        _client().request(ops.VOLUME_CREATE, name=volume.name, ephemeral=True)
        try:
            yield volume
        finally:
            _client().request(ops.VOLUME_DELETE, name=volume.name)

    def hydrate(self) -> Volume:
        """Modal's explicit lookup: made now if it may be, else it must exist."""
        if self.create_if_missing:
            _client().request(ops.VOLUME_CREATE, name=self.name, exist_ok=True)
        else:
            self.listdir("/")  # NotFoundError naming `coldsnap volume create`
        return self

    def ref(self) -> VolumeRef:
        """How functions' options name it (wire/mounts.py)."""
        return VolumeRef(self.name, self.create_if_missing)

    def _request(self, op: str, blob: bytes | None = None, **fields: Any
                 ) -> tuple[dict[str, Any], bytes | None]:
        if self.create_if_missing:
            _client().request(ops.VOLUME_CREATE, name=self.name, exist_ok=True)
        return _client().request(op, blob, name=self.name, **fields)

    def commit(self) -> None:
        """Make this container's writes durable. Every container mounting the volume
        sees them at once already (one directory on one host); this flushes them to
        disk, so they survive a crash of the host too."""
        if in_container():
            os.sync()

    def reload(self) -> None:
        """See other containers' commits: they are visible at once, so nothing to do."""

    def listdir(self, path: str = "/", recursive: bool = False) -> list[FileEntry]:
        """The entries under ``path`` (the whole tree with ``recursive``)."""
        header, _ = self._request(ops.VOLUME_LISTDIR, path=path, recursive=recursive)
        return [FileEntry.from_dict(entry) for entry in header["entries"]]

    def iterdir(self, path: str = "/", recursive: bool = True) -> Iterator[FileEntry]:
        yield from self.listdir(path, recursive)

    def read_file(self, path: str) -> Iterator[bytes]:
        """The file's contents, as Modal gives them: an iterator of bytes chunks."""
        _, blob = self._request(ops.VOLUME_READ, path=path)
        data = blob or b""
        for start in range(0, len(data), READ_CHUNK_BYTES):
            yield data[start:start + READ_CHUNK_BYTES]

    def read_file_into_fileobj(self, path: str, fileobj: Any) -> int:
        written = 0
        for chunk in self.read_file(path):
            written += fileobj.write(chunk) or 0
        return written

    def remove_file(self, path: str, recursive: bool = False) -> None:
        """Remove a file, or a directory with ``recursive=True``."""
        self._request(ops.VOLUME_REMOVE, path=path, recursive=recursive)

    def batch_upload(self, force: bool = False) -> _BatchUpload:
        """Collect ``put_file``/``put_directory`` calls; they are sent at the block's end.
        Without ``force`` a file that exists already in the volume is an error."""
        return _BatchUpload(self, force)

    def __repr__(self) -> str:
        return f"Volume.from_name({self.name!r})"


class _BatchUpload:
    def __init__(self, volume: Volume, force: bool) -> None:
        self.volume = volume
        self.force = force
        self._files: list[tuple[Path | BinaryIO, str, int | None]] = []

    def put_file(self, local_file: str | os.PathLike[str] | BinaryIO, remote_path: str,
                 mode: int | None = None) -> None:
        """Upload a local file, or what a binary file-like object (``io.BytesIO``,
        ``open(path, "rb")``) reads; the object is read at the block's end, so it must
        stay open until then."""
        if not isinstance(local_file, str | os.PathLike):
            self._files.append((local_file, remote_path, mode))
            return
        local = Path(local_file)
        if not local.is_file():
            raise InvalidError(f"batch_upload().put_file: {local} is not a file")
        self._files.append((local, remote_path, mode))

    def put_directory(self, local_path: str | os.PathLike[str], remote_path: str,
                      recursive: bool = True) -> None:
        local = Path(local_path)
        if not local.is_dir():
            raise InvalidError(f"batch_upload().put_directory: {local} is not a directory")
        found = local.rglob("*") if recursive else local.iterdir()
        for path in sorted(p for p in found if p.is_file()):
            rel = path.relative_to(local).as_posix()
            self._files.append((path, f"{remote_path.rstrip('/')}/{rel}", None))

    def __enter__(self) -> _BatchUpload:
        return self

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        if kind is not None:
            return  # the block failed: upload nothing
        if not self.force:
            self._refuse_existing()
        for local, remote, mode in self._files:
            data, local_mode = _contents(local, remote)
            self.volume._request(ops.VOLUME_WRITE, data, path=remote,
                                 mode=mode if mode is not None else local_mode)

    def _refuse_existing(self) -> None:
        for _, remote, _ in self._files:
            try:
                self.volume.listdir(remote)
            except LookupError:
                continue  # NotFoundError: free to write
            raise InvalidError(f"batch_upload(): {remote} exists in volume "
                               f"{self.volume.name!r}; pass force=True to overwrite it")


def _contents(local: Path | BinaryIO, remote: str) -> tuple[bytes, int]:
    """The bytes to upload to ``remote`` and their mode: a file's own, or 0o644 for
    what a file-like object reads."""
    if isinstance(local, Path):
        return local.read_bytes(), local.stat().st_mode & 0o777
    data = local.read()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidError(f"batch_upload().put_file(..., {remote!r}): the file-like object "
                           f"read {type(data).__name__}, not bytes; open it in binary mode "
                           "(\"rb\") or pass io.BytesIO")
    return bytes(data), FILEOBJ_MODE
