"""Volumes: named directories on the server host that containers mount read-write.

``<state_dir>/volumes/NAME/`` holds a volume's files; ``<state_dir>/volumes/.meta/
NAME.json`` when and how it was made. They outlive the server and its apps.
A container of a function with ``volumes={"/data": vol}`` sees the directory at
``/data`` through a bind mount (the engine's ``ContainerSpec.volumes``), in the
snapshot phase and after a restore alike: every container of every app that
mounts a volume shares its one directory, so a write is visible to the others
at once. The file operations here (`coldsnap volume put/get/ls/rm`, and
``Volume.listdir/read_file/remove_file/batch_upload``) never leave the volume's
directory: a path through ``..`` or a symlink (one a container made) is refused
(volume_files.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coldsnap.server import volume_files
from coldsnap.server.errors import ApiError
from coldsnap.settings import Settings
from coldsnap.wire.errors import BAD_REQUEST, NOT_FOUND
from coldsnap.wire.mounts import NAME_RULE, VolumeRef, is_object_name

META_DIR = ".meta"
VOLUME_MODE = 0o755


class VolumeStore:
    """The volumes of one server's state dir. Stateless: every call reads the disk."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.state_dir / "volumes"

    def path(self, name: str) -> Path:
        """The host directory of volume ``name`` (which must exist)."""
        path = self._dir(name)
        if not path.is_dir():
            raise self.missing(name)
        return path

    def _dir(self, name: str) -> Path:
        if not is_object_name(name):
            raise ApiError(BAD_REQUEST, f"volume name {name!r} is invalid: use {NAME_RULE}")
        return self.root / name

    @staticmethod
    def missing(name: str) -> ApiError:
        return ApiError(NOT_FOUND, f"no volume named {name!r}; create it with "
                        f"`coldsnap volume create {name}`, or pass create_if_missing=True "
                        "to coldsnap.Volume.from_name()")

    def create(self, name: str, exist_ok: bool = False, ephemeral: bool = False
               ) -> dict[str, Any]:
        path = self._dir(name)
        if path.is_dir():
            if exist_ok:
                return {"name": name, "created": False}
            raise ApiError(BAD_REQUEST, f"volume {name!r} already exists")
        (self.root / META_DIR).mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=VOLUME_MODE, exist_ok=exist_ok)
        os.chmod(path, VOLUME_MODE)
        meta = {"created_at": time.time(), "ephemeral": ephemeral}
        (self.root / META_DIR / f"{name}.json").write_text(json.dumps(meta))
        return {"name": name, "created": True}

    def ensure(self, refs: list[VolumeRef]) -> None:
        """At deploy: create the volumes that may be, refuse a missing one that may not."""
        for ref in refs:
            if not self._dir(ref.name).is_dir():
                if not ref.create_if_missing:
                    raise self.missing(ref.name)
                self.create(ref.name, exist_ok=True)

    def ls(self) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        rows = []
        for path in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != META_DIR):
            meta = self._meta(path.name)
            rows.append({"name": path.name, "created_at": meta.get("created_at"),
                         "ephemeral": bool(meta.get("ephemeral"))})
        return rows

    def _meta(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads((self.root / META_DIR / f"{name}.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def delete(self, name: str) -> dict[str, Any]:
        """Remove a volume and its files (containers that mount it keep an empty dir)."""
        path = self.path(name)
        shutil.rmtree(path)
        (self.root / META_DIR / f"{name}.json").unlink(missing_ok=True)
        return {"name": name, "deleted": True}

    # -- files (volume_files.py: never through a symlink) --------------------------

    def listdir(self, name: str, rel: str, recursive: bool = False) -> list[dict[str, Any]]:
        with _naming(name):
            return volume_files.entries(self.path(name), rel, recursive)

    def read(self, name: str, rel: str) -> bytes:
        with _naming(name):
            return volume_files.read(self.path(name), rel)

    def write(self, name: str, rel: str, data: bytes, mode: int = 0o644) -> dict[str, Any]:
        """Write ``data`` to ``rel``, making its directories; atomic per file."""
        with _naming(name):
            size = volume_files.write(self.path(name), rel, data, mode)
        return {"path": "/" + "/".join(volume_files.parts_of(rel)), "size": size}

    def remove(self, name: str, rel: str, recursive: bool = False) -> dict[str, Any]:
        with _naming(name):
            volume_files.remove(self.path(name), rel, recursive)
        return {"removed": rel}


@contextlib.contextmanager
def _naming(name: str) -> Iterator[None]:
    """volume_files' errors say "the volume"; name it, and say where to look."""
    try:
        yield
    except ApiError as exc:
        message = exc.message.replace("the volume", f"volume {name!r}", 1)
        if exc.kind == NOT_FOUND and message.startswith(f"volume {name!r} has no"):
            message += f"; see what it has with `coldsnap volume ls {name}`"
        raise ApiError(exc.kind, message) from None
