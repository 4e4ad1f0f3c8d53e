"""Volumes: named directories on the server host that containers mount read-write.

``<state_dir>/volumes/NAME/`` holds a volume's files; ``<state_dir>/volumes/.meta/
NAME.json`` when and how it was made. They outlive the server and its apps.
A container of a function with ``volumes={"/data": vol}`` sees the directory at
``/data`` through a bind mount (the engine's ``ContainerSpec.volumes``), in the
snapshot phase and after a restore alike: every container of every app that
mounts a volume shares its one directory, so a write is visible to the others
at once. The file operations here (`coldsnap volume put/get/ls/rm`, and
``Volume.listdir/read_file/remove_file/batch_upload``) never leave the volume's
directory: a path that leads out of it (``..``, a symlink a container made)
is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

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

    # -- files -----------------------------------------------------------------

    def inside(self, name: str, rel: str, must_exist: bool = True) -> Path:
        """``rel`` (``/a/b`` or ``a/b``) inside the volume, symlinks resolved; refused
        when it would lead out of the volume's directory."""
        root = self.path(name).resolve()
        target = (root / rel.lstrip("/")).resolve()
        if target != root and not target.is_relative_to(root):
            raise ApiError(BAD_REQUEST, f"path {rel!r} leads out of volume {name!r}")
        if must_exist and not target.exists():
            raise ApiError(NOT_FOUND, f"volume {name!r} has no {rel!r}; see what it has "
                           f"with `coldsnap volume ls {name}`")
        return target

    def listdir(self, name: str, rel: str, recursive: bool = False) -> list[dict[str, Any]]:
        root = self.path(name).resolve()
        target = self.inside(name, rel)
        if target.is_file():
            return [_entry(root, target)]
        found = target.rglob("*") if recursive else target.iterdir()
        return [_entry(root, p) for p in sorted(found)]

    def read(self, name: str, rel: str) -> bytes:
        target = self.inside(name, rel)
        if not target.is_file():
            raise ApiError(BAD_REQUEST, f"{rel!r} in volume {name!r} is a directory, not a "
                           "file; list it with `coldsnap volume ls`")
        return target.read_bytes()

    def write(self, name: str, rel: str, data: bytes, mode: int = 0o644) -> dict[str, Any]:
        """Write ``data`` to ``rel``, making its directories; atomic per file."""
        target = self.inside(name, rel, must_exist=False)
        if target == self.path(name).resolve() or target.is_dir():
            raise ApiError(BAD_REQUEST, f"{rel!r} in volume {name!r} is a directory; "
                           "name a file path")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{time.monotonic_ns()}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, mode & 0o777)
        os.replace(tmp, target)
        return {"path": "/" + str(target.relative_to(self.path(name).resolve())),
                "size": len(data)}

    def remove(self, name: str, rel: str, recursive: bool = False) -> dict[str, Any]:
        target = self.inside(name, rel)
        if target == self.path(name).resolve():
            raise ApiError(BAD_REQUEST, f"can't remove the root of volume {name!r}; delete "
                           f"the volume with `coldsnap volume delete {name}`")
        if target.is_dir() and not target.is_symlink():
            if not recursive:
                raise ApiError(BAD_REQUEST, f"{rel!r} in volume {name!r} is a directory: "
                               "pass recursive=True (`coldsnap volume rm -r`) to remove it")
            shutil.rmtree(target)
        else:
            target.unlink()
        return {"removed": rel}


def _entry(root: Path, path: Path) -> dict[str, Any]:
    info = path.lstat()
    kind = "directory" if stat.S_ISDIR(info.st_mode) else (
        "symlink" if stat.S_ISLNK(info.st_mode) else "file")
    return {"path": "/" + str(path.relative_to(root)), "type": kind, "size": info.st_size,
            "mtime": info.st_mtime}
